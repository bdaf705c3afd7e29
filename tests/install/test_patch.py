"""Unit tests of scripts/install/patch.py: where the install puts its lines, and that taking
them out gives back the original bytes.

Run: python3 -m unittest discover -s tests/install
"""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "install"))

from nginx_conf import FS, Config, parse  # noqa: E402
from patch import Options, PlanError, StripError, apply_edits, plan_install, strip_edits  # noqa: E402


class Planning(unittest.TestCase):
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

    def opts(self, **kw):
        return Options(modules_dir="/m", servers=[("http://127.0.0.1:1", False)], **kw)

    def install(self, main, **kw):
        """Plans an install, checks that the result parses and strips back, returns
        ({path: new bytes}, plan)."""
        cfg = Config(main)
        plan = plan_install(cfg, self.opts(**kw))
        out = {}
        for path, edits in plan.edits.items():
            orig = cfg.fs.read(path)
            new = apply_edits(orig, edits)
            parse(new, path)  # still valid syntax
            self.assertEqual(strip_edits(new, edits), (orig, []))
            out[path] = new
        return out, plan

    def test_load_module_before_events_and_include_at_http_start(self):
        main = self.write("nginx.conf", b"worker_processes 1;\n\nevents {\n}\nhttp {\n    sendfile on;\n}\n")
        out, plan = self.install(main)
        new = out[os.path.realpath(main)].decode()
        self.assertLess(new.index("load_module /m/ngx_ase_common_module.so;"), new.index("events"))
        self.assertLess(new.index("ngx_ase_common_module"), new.index("ngx_http_ase_request_module"))
        self.assertLess(new.index("ngx_http_ase_request_module"), new.index("ngx_http_ase_response_module"))
        self.assertIn("http {\n    # ngx-ase: managed begin (include ase.conf #2)\n    include ase.conf;\n", new)
        self.assertIn(os.path.join(self.dir, "ase.conf"), plan.creates)

    def test_after_existing_load_module(self):
        main = self.write("nginx.conf", b"load_module a.so;\nload_module b.so;\nuser x;\nevents {}\nhttp {}\n")
        out, _ = self.install(main)
        new = out[os.path.realpath(main)].decode()
        self.assertTrue(new.startswith("load_module a.so;\nload_module b.so;\n# ngx-ase: managed begin (load_module #1)\n"))

    def test_debian_layout_uses_modules_enabled_and_conf_d(self):
        self.write("modules-enabled/50-x.conf", b"")
        os.makedirs(os.path.join(self.dir, "conf.d"))
        main = self.write("nginx.conf", (
            f"include {self.dir}/modules-enabled/*.conf;\nevents {{}}\n"
            f"http {{\n\tinclude {self.dir}/conf.d/*.conf;\n}}\n").encode())
        out, plan = self.install(main)
        self.assertEqual(out, {})
        self.assertEqual(sorted(plan.creates), sorted([os.path.join(self.dir, "modules-enabled/50-ngx-ase.conf"),
                                                       os.path.join(self.dir, "conf.d/ase.conf")]))

    def test_one_line_blocks(self):
        main = self.write("nginx.conf", b"events{}http{server{location /api{return 204;}}}")
        out, _ = self.install(main, enable_locations=["/api"])
        new = out[os.path.realpath(main)]
        self.assertIn(b"location /api{\n", new)
        ase_conf = os.path.join(self.dir, "ase.conf")
        loc = [d for d, _ in Config(main, FS({os.path.realpath(main): new, ase_conf: b""})).walk()
               if d.name == "location"][0]
        self.assertEqual([c.name for c in loc.block], ["ase_request", "ase_response", "return"])

    def test_crlf_file_keeps_crlf(self):
        main = self.write("nginx.conf", b"events {}\r\nhttp {\r\n  server {\r\n    location /api {\r\n    }\r\n  }\r\n}\r\n")
        out, _ = self.install(main, enable_locations=["/api"])
        new = out[os.path.realpath(main)]
        self.assertNotIn(b"\n", new.replace(b"\r\n", b""))

    def test_enable_location_in_every_server_and_through_includes(self):
        self.write("v/a.conf", b"server { location /api { } location /apix { } }\n")
        self.write("v/b.conf", b"server { location = /api { } }\n")
        main = self.write("nginx.conf", b"events {}\nhttp { include v/*.conf; }\n")
        out, _ = self.install(main, enable_locations=["/api"])
        self.assertEqual(out[os.path.realpath(os.path.join(self.dir, "v/a.conf"))].count(b"ase_request on;"), 1)
        self.assertEqual(out[os.path.realpath(os.path.join(self.dir, "v/b.conf"))].count(b"ase_request on;"), 1)

    def test_refusals(self):
        main = self.write("nginx.conf", b"events {}\nhttp { server { location / { } } }\n")
        with self.assertRaises(PlanError):
            plan_install(Config(main), self.opts(enable_locations=["/nope"]))
        main = self.write("nginx.conf", b"load_module /x/ngx_ase_common_module.so;\nevents {}\nhttp {}\n")
        with self.assertRaises(PlanError):
            plan_install(Config(main), self.opts())
        main = self.write("nginx.conf", b"events {}\n")
        with self.assertRaises(PlanError):
            plan_install(Config(main), self.opts())
        main = self.write("nginx.conf", b"events {}\nhttp { server { location / { ase_request off; } } }\n")
        with self.assertRaises(PlanError):
            plan_install(Config(main), self.opts(enable_locations=["/"]))

    def test_ase_conf_contents(self):
        main = self.write("nginx.conf", b"events {}\nhttp {}\n")
        o = Options(modules_dir="/m", servers=[("http://a:1", False), ("http://b:2", True)], max_fails="3",
                    fail_timeout="10s", token_file="/t/tok en", fail_mode="closed", connect_timeout="100ms",
                    timeout="1s", enable_all=True)
        text = plan_install(Config(main), o).creates[os.path.join(self.dir, "ase.conf")][0].decode()
        body = [l for l in text.splitlines() if not l.startswith("#")]
        self.assertEqual(body, ["ase_server http://a:1 max_fails=3 fail_timeout=10s;",
                                "ase_server http://b:2 backup max_fails=3 fail_timeout=10s;",
                                'ase_token_file "/t/tok en";', "ase_fail_mode closed;",
                                "ase_connect_timeout 100ms;", "ase_timeout 1s;", "ase_request on;",
                                "ase_response on;"])


class Strip(unittest.TestCase):
    def test_exact_and_after_other_edits(self):
        orig = b"a;\nb;\nc;\n"
        edits = [(3, b"# x\n", 1), (6, b"# y\n", 3)]
        new = apply_edits(orig, edits)
        self.assertEqual(new, b"a;\n# x\nb;\n# y\nc;\n")
        self.assertEqual(strip_edits(new, edits), (orig, []))
        self.assertEqual(strip_edits(b"z;\n" + new, edits), (b"z;\n" + orig, []))
        # only the later stage's lines (an uninstall's first step)
        self.assertEqual(strip_edits(new, edits, only=[edits[1]]), (b"a;\n# x\nb;\nc;\n", []))
        self.assertEqual(strip_edits(b"z;\n" + new, edits, only=[edits[1]]), (b"z;\na;\n# x\nb;\nc;\n", []))

    def test_two_identical_locations_plus_an_edit_above(self):
        # Two servers with `location /` at the same indent: each snippet has a marker of its own.
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        main = os.path.join(d, "nginx.conf")
        srv = b"    server {\n        location / {\n        }\n    }\n"
        orig = b"events {}\nhttp {\n" + srv + srv + b"}\n"
        with open(main, "wb") as f:
            f.write(orig)
        plan = plan_install(Config(main), Options(modules_dir="/m", servers=[("http://a:1", False)],
                                                  enable_locations=["/"]))
        edits = plan.edits[os.path.realpath(main)]
        new = apply_edits(orig, edits)
        self.assertEqual(len({e[1] for e in edits}), len(edits), "every snippet is unique")
        edited = new.replace(b"    server {", b"    # the operator's comment\n    server {", 1)
        self.assertEqual(strip_edits(edited, edits)[0],
                         orig.replace(b"    server {", b"    # the operator's comment\n    server {", 1))

    def test_snippet_taken_out_by_hand_and_edited_inside(self):
        orig = b"a;\nb;\n"
        edits = [(3, b"# ngx-ase: managed begin (x #1)\nx;\n# ngx-ase: managed end (x #1)\n", 3)]
        new = apply_edits(orig, edits)
        self.assertEqual(strip_edits(b"# mine\n" + orig, edits), (b"# mine\n" + orig, ["ngx-ase: managed begin (x #1)"]))
        with self.assertRaises(StripError) as cm:
            strip_edits(b"# mine\n" + new.replace(b"x;", b"y;"), edits)
        self.assertEqual(cm.exception.line, 3)


if __name__ == "__main__":
    unittest.main()
