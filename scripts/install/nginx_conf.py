"""A tokenizer and parser for nginx's configuration syntax.

It follows ngx_conf_read_token() (src/core/ngx_conf_file.c) rule for rule, so that what it
calls a directive, a block, a comment or a quoted string is what nginx calls one:

- words end at whitespace, ";" or "{" (but "${" inside a word does not end it); "}" and "#"
  inside a word are ordinary characters;
- a "#" at the start of a token starts a comment that runs to the end of the line;
- a word that starts with " or ' is quoted up to the matching quote; a backslash escapes the
  next character inside and outside quotes; after a closing quote only whitespace, ";", "{"
  or ")" may follow;
- ";" or "{" with no word before it, and "}" after words, are errors;
- the value of a word is unescaped as nginx does: \\" \\' \\\\ \\t \\r \\n;
- the body of a `*_by_lua_block` is skipped as the Lua module reads it (lua_block.py): it
  becomes a block with no directives.

Everything keeps byte offsets into the file it came from, so that edits can be surgical
insertions that leave every other byte of the file untouched. `include` is resolved like
nginx does it: relative paths against the configuration prefix (the directory of the main
configuration file), globs (any of "*?[") sorted as glob(3) sorts them, dotfiles not matched
by wildcards, and a glob matching nothing is not an error.
"""

from __future__ import annotations

import fnmatch
import glob as _glob
import os
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from lua_block import LuaBlockError, is_foreign_block, skip_lua_body

WS = b" \t\r\n"
GLOB_CHARS = "*?["
MAX_INCLUDE_DEPTH = 50


class ConfError(Exception):
    """A syntax error, reported like nginx does: message in file:line."""

    def __init__(self, msg: str, path: str = "<string>", line: int = 0):
        self.msg, self.path, self.line = msg, path, line
        super().__init__(f"{msg} in {path}:{line}" if line else f"{msg} in {path}")


@dataclass
class Token:
    kind: str  # "word", "comment", ";", "{", "}"
    start: int  # offset of the first byte (the opening quote of a quoted word)
    end: int  # offset just past the last byte (past the closing quote)
    line: int
    value: bytes = b""  # words: the unescaped value; comments: the text after "#"
    quoted: bool = False


def _unescape(raw: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x5C and i + 1 < n:  # backslash
            nxt = raw[i + 1]
            if nxt in b"\"'\\":
                out.append(nxt)
                i += 2
                continue
            if nxt in b"trn":
                out += {0x74: b"\t", 0x72: b"\r", 0x6E: b"\n"}[nxt]
                i += 2
                continue
        out.append(c)
        i += 1
    return bytes(out)


def tokenize(data: bytes, path: str = "<string>") -> List[Token]:
    """Splits a configuration file into tokens; raises ConfError where nginx would."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    toks: List[Token] = []
    n = len(data)
    i = 0
    line = 1
    nargs = 0  # words of the directive being read
    name = b""  # its first word

    def err(msg: str, at_line: Optional[int] = None):
        raise ConfError(msg, path, at_line or line)

    while i < n:
        ch = data[i]
        if ch in WS:
            if ch == 0x0A:
                line += 1
            i += 1
            continue
        if ch == 0x23:  # '#': a comment, to the end of the line
            j = data.find(b"\n", i)
            j = n if j < 0 else j
            toks.append(Token("comment", i, j, line, data[i + 1:j]))
            i = j
            continue
        if ch in b";{":
            if nargs == 0:
                err(f'unexpected "{chr(ch)}"')
            toks.append(Token(chr(ch), i, i + 1, line))
            nargs = 0
            i += 1
            if ch == 0x7B and is_foreign_block(name.decode("utf-8", "surrogateescape")):
                # The body is read by another parser (the Lua module's): skip it as that does.
                try:
                    i, line = skip_lua_body(data, i, line)
                except LuaBlockError as e:
                    err(e.msg, e.line)
                toks.append(Token("}", i, i + 1, line))
                i += 1
            continue
        if ch == 0x7D:  # '}'
            if nargs:
                err('unexpected "}"')
            toks.append(Token("}", i, i + 1, line))
            i += 1
            continue

        start, start_line = i, line
        if ch in b"\"'":
            quote = ch
            i += 1
            while True:
                if i >= n:
                    err('unexpected end of file, expecting ";" or "}"')
                c = data[i]
                if c == 0x5C:  # backslash: the next byte is taken as is
                    if i + 1 < n and data[i + 1] == 0x0A:
                        line += 1
                    i += 2
                    continue
                if c == 0x0A:
                    line += 1
                if c == quote:
                    break
                i += 1
            raw = data[start + 1:i]
            i += 1  # past the closing quote
            if i < n and data[i] not in WS and data[i] not in b";{)":
                err(f'unexpected "{chr(data[i])}"')
            toks.append(Token("word", start, i, start_line, _unescape(raw), True))
            if nargs == 0:
                name = toks[-1].value
            nargs += 1
            continue

        # An unquoted word: ends at whitespace, ';' or '{' (not "${").
        prev_dollar = False
        while i < n:
            c = data[i]
            if c == 0x5C:  # backslash escapes the next byte
                if i + 1 < n and data[i + 1] == 0x0A:
                    line += 1
                i += 2
                prev_dollar = False
                continue
            if c == 0x7B and prev_dollar:  # "${"
                i += 1
                prev_dollar = False
                continue
            if c in WS or c in b";{":
                break
            prev_dollar = c == 0x24
            i += 1
        if i > n:  # a trailing backslash at the end of the file
            i = n
        toks.append(Token("word", start, i, start_line, _unescape(data[start:i])))
        if nargs == 0:
            name = toks[-1].value
        nargs += 1

    if nargs:
        err('unexpected end of file, expecting ";" or "}"')
    return toks


@dataclass
class Directive:
    name: str
    args: List[str]
    path: str  # the file it is written in
    line: int
    start: int  # offset of its name
    end: int  # offset past its ";" or past the "}" of its block
    block: Optional[List["Directive"]] = None
    block_start: int = -1  # offset past "{"
    block_end: int = -1  # offset of "}"
    # include only: the files it pulls in, each with its parsed directives.
    included: List[Tuple[str, List["Directive"]]] = field(default_factory=list)

    def __repr__(self) -> str:  # short, for test failures
        return f"Directive({self.name!r}, {self.args!r}, {self.path}:{self.line})"


@dataclass
class ParsedFile:
    path: str
    data: bytes
    directives: List[Directive]
    comments: List[Token]


def _word(t: Token) -> str:
    return t.value.decode("utf-8", "surrogateescape")


def parse(data: bytes, path: str = "<string>") -> ParsedFile:
    """Parses one file into its directive tree (includes are not followed here)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    toks = tokenize(data, path)
    top: List[Directive] = []
    stack: List[Tuple[Directive, List[Directive]]] = []
    cur = top
    words: List[Token] = []
    comments: List[Token] = []
    for t in toks:
        if t.kind == "comment":
            comments.append(t)
        elif t.kind == "word":
            words.append(t)
        elif t.kind == ";":
            d = Directive(_word(words[0]), [_word(w) for w in words[1:]], path, words[0].line,
                          words[0].start, t.end)
            cur.append(d)
            words = []
        elif t.kind == "{":
            d = Directive(_word(words[0]), [_word(w) for w in words[1:]], path, words[0].line,
                          words[0].start, -1, block=[], block_start=t.end)
            cur.append(d)
            stack.append((d, cur))
            cur = d.block
            words = []
        elif t.kind == "}":
            if not stack:
                raise ConfError('unexpected "}"', path, t.line)
            d, cur = stack.pop()
            d.block_end = t.start
            d.end = t.end
    if stack:
        raise ConfError('unexpected end of file, expecting "}"', path, data.count(b"\n") + 1)
    return ParsedFile(path, data, top, comments)


def has_glob(pattern: str) -> bool:
    return any(c in pattern for c in GLOB_CHARS)


class FS:
    """Reads files, optionally through an overlay {realpath: bytes or None (absent)}, so a
    configuration can be parsed as it was before an install without touching the disk."""

    def __init__(self, overlay: Optional[Dict[str, Optional[bytes]]] = None):
        self.overlay = dict(overlay or {})

    def _ov(self, path: str):
        return self.overlay.get(os.path.realpath(path), ...)

    def exists(self, path: str) -> bool:
        v = self._ov(path)
        if v is not ...:
            return v is not None
        return os.path.isfile(path)

    def read(self, path: str) -> bytes:
        v = self._ov(path)
        if v is None:
            raise FileNotFoundError(path)
        if v is not ...:
            return v
        with open(path, "rb") as f:
            return f.read()

    def glob(self, pattern: str) -> List[str]:
        # Python's glob, like glob(3) without GLOB_PERIOD, leaves dotfiles out of wildcards;
        # sorted() on str is byte order for UTF-8, which is how glob(3) sorts in nginx.
        found = [p for p in _glob.glob(pattern) if not os.path.isdir(p)]
        found = [p for p in found if self._ov(p) is not None]
        # Files that exist only in the overlay (same directory as the pattern).
        d, base = os.path.split(pattern)
        if not has_glob(d):
            rd = os.path.realpath(d)
            for rp, v in self.overlay.items():
                if v is None or os.path.exists(rp):
                    continue
                name = os.path.basename(rp)
                if os.path.dirname(rp) == rd and fnmatch.fnmatchcase(name, base) \
                        and (not name.startswith(".") or base.startswith(".")):
                    found.append(os.path.join(d, name))
        return sorted(set(found))


class Config:
    """A main configuration file and everything it includes."""

    def __init__(self, main: str, fs: Optional[FS] = None):
        self.main = os.path.abspath(main)
        self.prefix = os.path.dirname(self.main)  # nginx's conf_prefix
        self.fs = fs or FS()
        self.files: Dict[str, ParsedFile] = {}  # by path as nginx opens it
        self.root = self._load(self.main, 0).directives

    def full_name(self, name: str) -> str:
        return name if os.path.isabs(name) else os.path.normpath(os.path.join(self.prefix, name))

    def _load(self, path: str, depth: int) -> ParsedFile:
        if depth > MAX_INCLUDE_DEPTH:
            raise ConfError("too many nested includes", path)
        if path in self.files:
            pf = self.files[path]
        else:
            try:
                data = self.fs.read(path)
            except OSError as e:
                raise ConfError(f'open() "{path}" failed ({e.strerror or e})', path) from None
            pf = parse(data, path)
            self.files[path] = pf
        self._resolve(pf.directives, depth)
        return pf

    def _resolve(self, directives: List[Directive], depth: int) -> None:
        for d in directives:
            if d.name == "include" and d.block is None:
                if len(d.args) != 1:
                    raise ConfError('invalid number of arguments in "include" directive', d.path, d.line)
                name = self.full_name(d.args[0])
                if has_glob(name):
                    paths = self.fs.glob(name)
                else:
                    paths = [name]
                d.included = [(p, self._load(p, depth + 1).directives) for p in paths]
            elif d.block is not None:
                self._resolve(d.block, depth)

    def walk(self, directives: Optional[List[Directive]] = None,
             ctx: Tuple[str, ...] = ()) -> Iterator[Tuple[Directive, Tuple[str, ...]]]:
        """Every directive with the names of the blocks around it (includes are transparent:
        what an include pulls in has the include's context)."""
        for d in self.root if directives is None else directives:
            yield d, ctx
            for _, sub in d.included:
                yield from self.walk(sub, ctx)
            if d.block is not None:
                yield from self.walk(d.block, ctx + (d.name,))

    def children(self, directives: List[Directive]) -> Iterator[Directive]:
        """The directives of one block level, includes expanded in place."""
        for d in directives:
            yield d
            for _, sub in d.included:
                yield from self.children(sub)


_BARE = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:@%+=,~[]*?!^&()")


def quote(arg: str) -> str:
    """An argument as written in a configuration file: bare when safe, else double-quoted."""
    b = arg.encode("utf-8", "surrogateescape")
    if b and all(c in _BARE for c in b):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
