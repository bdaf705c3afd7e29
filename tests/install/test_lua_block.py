"""Unit tests of scripts/install/lua_block.py: a *_by_lua_block body is skipped the way the
Lua module reads it, so braces in Lua strings, comments and long brackets do not count.

Run: python3 -m unittest discover -s tests/install
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "install"))

from lua_block import LuaBlockError, skip_lua_body  # noqa: E402
from nginx_conf import ConfError, parse  # noqa: E402


def body_end(lua: bytes) -> bytes:
    """What the skipper takes as the body of `x_by_lua_block {` + lua."""
    data = b"{" + lua
    end, _ = skip_lua_body(data, 1, 1)
    return data[1:end]


class SkipLuaBody(unittest.TestCase):
    def test_nested_tables(self):
        self.assertEqual(body_end(b" local t = { a = { 1 } } } rest"), b" local t = { a = { 1 } } ")

    def test_strings_with_braces_and_escapes(self):
        self.assertEqual(body_end(b' ngx.say("}") } x'), b' ngx.say("}") ')
        self.assertEqual(body_end(b" s = '}\\'}' } x"), b" s = '}\\'}' ")
        self.assertEqual(body_end(b' s = "a\\"}" } x'), b' s = "a\\"}" ')

    def test_long_brackets(self):
        self.assertEqual(body_end(b" s = [[ } ]] } x"), b" s = [[ } ]] ")
        self.assertEqual(body_end(b" s = [==[ ]] } ]=] ]==] } x"), b" s = [==[ ]] } ]=] ]==] ")
        # "[" without a second "[" is an index, not a long bracket
        self.assertEqual(body_end(b" t[1] = 2 } x"), b" t[1] = 2 ")

    def test_comments(self):
        self.assertEqual(body_end(b" -- } not the end\n } x"), b" -- } not the end\n ")
        self.assertEqual(body_end(b" --[[ } \n } ]] } x"), b" --[[ } \n } ]] ")
        self.assertEqual(body_end(b" --[=[ ]] } ]=] } x"), b" --[=[ ]] } ]=] ")
        self.assertEqual(body_end(b" --[ not long } \n} x"), b" --[ not long } \n")
        self.assertEqual(body_end(b' s = "-- }" } x'), b' s = "-- }" ')

    def test_line_count(self):
        data = b"{ a = [[\n\n]] -- c\n}"
        self.assertEqual(skip_lua_body(data, 1, 7), (len(data) - 1, 10))

    def test_unfinished(self):
        for lua in (b' "abc } ', b" [[ } ", b" { } ", b" --[[ }"):
            with self.assertRaises(LuaBlockError, msg=lua):
                body_end(lua)


class InTheParser(unittest.TestCase):
    def test_openresty_hello_world(self):
        pf = parse(b'location / {\n    content_by_lua_block { ngx.say("Hello World") }\n}\n')
        loc = pf.directives[0]
        self.assertEqual([(d.name, d.block) for d in loc.block], [("content_by_lua_block", [])])

    def test_set_by_lua_block_and_what_follows(self):
        pf = parse(b'location / { set_by_lua_block $x { return "}" } return 200 "ok"; }')
        self.assertEqual([(d.name, d.args) for d in pf.directives[0].block],
                         [("set_by_lua_block", ["$x"]), ("return", ["200", "ok"])])

    def test_comment_markers_in_lua_are_not_nginx_comments(self):
        pf = parse(b"init_by_lua_block {\n  # not nginx\n  x = 1 -- # nor this\n}\n")
        self.assertEqual(pf.comments, [])

    def test_error_names_the_line(self):
        with self.assertRaises(ConfError) as cm:
            parse(b"http {\n  init_by_lua_block {\n  s = [[\n}\n}\n", "f.conf")
        self.assertEqual(cm.exception.line, 3)


if __name__ == "__main__":
    unittest.main()
