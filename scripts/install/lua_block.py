"""Finds the end of a block whose body nginx hands to another parser.

`content_by_lua_block { ... }` and every other `*_by_lua_block` directive are read by the
Lua module with its own lexer, not by ngx_conf_read_token(): inside the braces, Lua's rules
decide what a string or a comment is, and a "}" in a Lua string or comment does not end the
block. This skips such a body the way that lexer does:

- "..." and '...' strings, a backslash escaping the next character;
- long strings [[ ... ]], [=[ ... ]=], [==[ ... ]==], ... (the same number of "=" closes);
- comments: "--" to the end of the line, and long comments --[[ ... ]], --[==[ ... ]==];
- "{" and "}" anywhere else nest; the "}" that balances the opening "{" ends the block.
"""

from __future__ import annotations

from typing import Optional, Tuple

# Directive names whose block body is not nginx syntax.
FOREIGN_BLOCK_SUFFIXES = ("_by_lua_block",)


def is_foreign_block(name: str) -> bool:
    return name.endswith(FOREIGN_BLOCK_SUFFIXES)


class LuaBlockError(Exception):
    def __init__(self, msg: str, line: int):
        self.msg, self.line = msg, line
        super().__init__(msg)


def _long_bracket(data: bytes, i: int) -> Optional[int]:
    """At "[", the level of a long bracket "[=*[" starting there, else None."""
    j = i + 1
    while j < len(data) and data[j] == 0x3D:  # '='
        j += 1
    if j < len(data) and data[j] == 0x5B:  # '['
        return j - i - 1
    return None


def skip_lua_body(data: bytes, i: int, line: int) -> Tuple[int, int]:
    """i: the offset just past the block's "{"; returns (offset of the closing "}", line of
    that "}"). Raises LuaBlockError when the body does not end."""
    n = len(data)
    depth = 1
    start_line = line
    while i < n:
        c = data[i]
        if c == 0x0A:
            line += 1
            i += 1
        elif c in b"\"'":
            quote, i = c, i + 1
            while i < n and data[i] != quote:
                if data[i] == 0x5C:  # backslash: the next byte is escaped (may be a newline)
                    i += 1
                if i < n and data[i] == 0x0A:
                    line += 1
                i += 1
            if i >= n:
                raise LuaBlockError("unfinished Lua string in a *_by_lua_block", line)
            i += 1
        elif c == 0x2D and data[i + 1:i + 2] == b"-":  # "--": a comment
            i += 2
            level = _long_bracket(data, i) if data[i:i + 1] == b"[" else None
            if level is None:
                j = data.find(b"\n", i)
                i = n if j < 0 else j
            else:
                i, line = _skip_long(data, i, level, line)
        elif c == 0x5B and _long_bracket(data, i) is not None:  # "[[" or "[=*["
            i, line = _skip_long(data, i, _long_bracket(data, i), line)
        elif c == 0x7B:
            depth += 1
            i += 1
        elif c == 0x7D:
            depth -= 1
            if depth == 0:
                return i, line
            i += 1
        else:
            i += 1
    raise LuaBlockError("unexpected end of file in a *_by_lua_block started", start_line)


def _skip_long(data: bytes, i: int, level: int, line: int) -> Tuple[int, int]:
    """i at the opening "[=*["; returns the offset past the matching "]=*]"."""
    close = b"]" + b"=" * level + b"]"
    body = i + level + 2
    j = data.find(close, body)
    if j < 0:
        raise LuaBlockError("unfinished Lua long string or comment in a *_by_lua_block", line)
    return j + len(close), line + data.count(b"\n", i, j + len(close))
