"""Unit tests of scripts/install/nginx_conf.py, the tokenizer of nginx's configuration syntax.

Run: python3 -m unittest discover -s tests/install
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "install"))

from nginx_conf import FS, Config, ConfError, parse, quote, tokenize  # noqa: E402

LAYOUTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layouts")


def words(src):
    return [(t.kind, t.value) if t.kind == "word" else t.kind for t in tokenize(src) if t.kind != "comment"]


class Tokenizer(unittest.TestCase):
    def test_simple(self):
        self.assertEqual(words(b"a b;\nc {\n}"),
                         [("word", b"a"), ("word", b"b"), ";", ("word", b"c"), "{", "}"])

    def test_offsets_cover_the_source(self):
        src = b'  listen  80 ;\n"q x" y { }'
        toks = tokenize(src)
        self.assertEqual([src[t.start:t.end] for t in toks], [b"listen", b"80", b";", b'"q x"', b"y", b"{", b"}"])
        self.assertEqual([t.line for t in toks], [1, 1, 1, 2, 2, 2, 2])

    def test_comments(self):
        toks = tokenize(b"a 1; # c { } ;\n# whole line\nb 2;")
        self.assertEqual([t.value for t in toks if t.kind == "comment"], [b" c { } ;", b" whole line"])
        self.assertEqual(words(b"a 1; # c { } ;\nb 2;"), [("word", b"a"), ("word", b"1"), ";", ("word", b"b"), ("word", b"2"), ";"])

    def test_comment_inside_a_directive(self):
        self.assertEqual(words(b"listen 80 # port\n default_server;"),
                         [("word", b"listen"), ("word", b"80"), ("word", b"default_server"), ";"])

    def test_hash_inside_a_word_is_not_a_comment(self):
        self.assertEqual(words(b"location /a#b { }"), [("word", b"location"), ("word", b"/a#b"), "{", "}"])

    def test_quoted_strings_with_braces_hash_semicolons(self):
        self.assertEqual(words(b'return 200 "} { # ;";'),
                         [("word", b"return"), ("word", b"200"), ("word", b"} { # ;"), ";"])
        self.assertEqual(words(b"x '{\"}';"), [("word", b"x"), ("word", b'{"}'), ";"])

    def test_escapes(self):
        self.assertEqual(words(br'x "a\"b" ' + br"'c\'d' " + br'"t\tn\nr\rs\\" "\q";'),
                         [("word", b"x"), ("word", b'a"b'), ("word", b"c'd"), ("word", b"t\tn\nr\rs\\"),
                          ("word", b"\\q"), ";"])

    def test_backslash_outside_quotes(self):
        # the backslash keeps ";" in the word and stays in its value: nginx unescapes only \" \' \\ \t \r \n
        self.assertEqual(words(b"x a\\;b;"), [("word", b"x"), ("word", b"a\\;b"), ";"])
        self.assertEqual(words(b"x a\\ b;"), [("word", b"x"), ("word", b"a\\ b"), ";"])

    def test_brace_inside_a_word_and_variables(self):
        self.assertEqual(words(b"x a}b ${var}c;"), [("word", b"x"), ("word", b"a}b"), ("word", b"${var}c"), ";"])
        # "{" ends a word unless it follows "$"
        self.assertEqual(words(b"location /x{ }"), [("word", b"location"), ("word", b"/x"), "{", "}"])

    def test_paren_after_quote(self):
        self.assertEqual(words(b'if ($a = "b") { }'),
                         [("word", b"if"), ("word", b"($a"), ("word", b"="), ("word", b"b"), ("word", b")"), "{", "}"])

    def test_crlf(self):
        toks = tokenize(b"a 1;\r\nb 2;\r\n")
        self.assertEqual([t.line for t in toks], [1, 1, 1, 2, 2, 2])
        self.assertEqual(words(b"a\r\n1;"), [("word", b"a"), ("word", b"1"), ";"])

    def test_errors_like_nginx(self):
        for src, msg in [(b";", 'unexpected ";"'), (b"{", 'unexpected "{"'), (b"a }", 'unexpected "}"'),
                         (b'a "b', "unexpected end of file"), (b"a b", "unexpected end of file"),
                         (b'a "b"c;', 'unexpected "c"'), (b"a 'b'}", 'unexpected "}"')]:
            with self.assertRaises(ConfError, msg=src) as cm:
                tokenize(src)
            self.assertIn(msg, str(cm.exception))

    def test_error_line_numbers(self):
        with self.assertRaises(ConfError) as cm:
            tokenize(b"a 1;\n\nb ;\n;", "f.conf")
        self.assertEqual((cm.exception.path, cm.exception.line), ("f.conf", 4))


class Parser(unittest.TestCase):
    def test_tree_and_offsets(self):
        src = b"events { }\nhttp {\n  server { listen 80; }\n}\n"
        pf = parse(src)
        ev, http = pf.directives
        self.assertEqual((ev.name, http.name), ("events", "http"))
        server = http.block[0]
        self.assertEqual(server.block[0].args, ["80"])
        self.assertEqual(src[http.start:http.end], b"http {\n  server { listen 80; }\n}")
        self.assertEqual(src[server.block_start:server.block_end], b" listen 80; ")
        self.assertEqual(server.line, 3)

    def test_unbalanced(self):
        with self.assertRaises(ConfError):
            parse(b"http {")
        with self.assertRaises(ConfError):
            parse(b"}")

    def test_quoted_names_and_args(self):
        d = parse(b'location = "/with space" { }').directives[0]
        self.assertEqual(d.args, ["=", "/with space"])

    def test_tricky_layout(self):
        path = os.path.join(LAYOUTS, "tricky", "nginx.conf")
        cfg = Config(path)
        locs = [d.args[-1] for d, ctx in cfg.walk() if d.name == "location"]
        self.assertEqual(locs, ["/api", "/with space", "^/re{1,3}$", "/api/x#y", "/a"])
        mp = next(d for d, _ in cfg.walk() if d.name == "map")
        self.assertEqual([c.name for c in mp.block], ["default", '~^/x"y', "~^/brace{2}$", "~^/plain#hash$"])
        lf = next(d for d, _ in cfg.walk() if d.name == "log_format")
        self.assertEqual(lf.args[1], "$remote_addr \"{\" #not-a-comment } ' still quoted ; ")
        self.assertEqual([ctx for d, ctx in cfg.walk() if d.name == "return"][0], ("http", "server", "location"))


class Includes(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, rel, text):
        p = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(text)
        return p

    def test_globs_relative_sorted_dotfiles_skipped(self):
        main = self.write("nginx.conf", b"http { include d/*.conf; include none/*.conf; include one.conf; }")
        self.write("d/b.conf", b"b 1;")
        self.write("d/a.conf", b"a 1;")
        self.write("d/.hidden.conf", b"hidden 1;")
        self.write("d/c.txt", b"c 1;")
        self.write("one.conf", b"one 1;")
        cfg = Config(main)
        names = [(d.name, ctx) for d, ctx in cfg.walk() if d.name != "include"]
        self.assertEqual(names, [("http", ()), ("a", ("http",)), ("b", ("http",)), ("one", ("http",))])

    def test_include_relative_to_main_dir_not_to_the_including_file(self):
        main = self.write("nginx.conf", b"include sub/x.conf;")
        self.write("sub/x.conf", b"include y.conf;")
        self.write("y.conf", b"y 1;")
        self.assertIn("y", [d.name for d, _ in Config(main).walk()])

    def test_missing_plain_include_is_an_error(self):
        main = self.write("nginx.conf", b"include missing.conf;")
        with self.assertRaises(ConfError):
            Config(main)

    def test_overlay_hides_and_replaces(self):
        main = self.write("nginx.conf", b"http { include d/*.conf; }")
        a = self.write("d/a.conf", b"a 1;")
        b = self.write("d/b.conf", b"b 1;")
        cfg = Config(main, FS({os.path.realpath(a): None, os.path.realpath(b): b"bb 2;"}))
        self.assertEqual([d.name for d, _ in cfg.walk() if d.name != "include"], ["http", "bb"])


class Quote(unittest.TestCase):
    def test_roundtrip(self):
        for s in ["http://127.0.0.1:8000", "/a b/c", 'x"y', "a;b", "{", "#x", "a\\b", "$x"]:
            q = quote(s)
            d = parse(f"x {q};".encode()).directives[0]
            self.assertEqual(d.args, [s], q)
        self.assertEqual(quote("http://h:1/p"), "http://h:1/p")


@unittest.skipUnless(shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"), "no nginx to compare with")
class AgreesWithNginx(unittest.TestCase):
    """Syntax errors: our tokenizer fails exactly where nginx -t says "unexpected"."""

    SNIPPETS = [
        b'"a b" c', b"'a' \"b\"", b"a\\;b c", b'"} {" d', b"${x}y z", b"a#b c", b"a}b c",
        b'"a"b c', b"'a'}", b'"unterminated', b"x ;; y", b"a 'b\\'c' d", b"(\"a\")",
    ]

    def nginx_says_syntax_error(self, conf_text):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "nginx.conf")
            with open(p, "wb") as f:
                f.write(conf_text)
            r = subprocess.run([nginx, "-t", "-c", p, "-p", d + "/", "-e", "stderr"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out = r.stdout.decode("utf-8", "replace")
            return "unexpected" in out, out

    def test_snippets(self):
        for s in self.SNIPPETS:
            text = b"pid nginx.pid;\nevents {}\nhttp { log_format x " + s + b"; }\n"
            theirs, out = self.nginx_says_syntax_error(text)
            try:
                tokenize(text)
                ours = False
            except ConfError:
                ours = True
            self.assertEqual(ours, theirs, f"{s!r}: nginx said {out}")


if __name__ == "__main__":
    unittest.main()
