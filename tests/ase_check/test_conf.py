"""scripts/ase-check --conf: the nodes, tokens, TLS settings and ase_timeout come from an nginx
configuration, read by the installer's parser (includes followed, relative paths taken from
the configuration's directory as nginx takes them)."""

from __future__ import annotations

import os

from harness import TOKEN, CheckCase, Certs, ase_check

ALL_OK = {"reach": "ok", "token": "ok", "keepalive": "ok", "unknown_api": "ok", "malformed": "ok", "latency": "ok"}


class FromNginxConf(CheckCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certs = Certs(cls.tmp)
        cls.plain = cls.double("--keepalive")
        cert, key = cls.certs.server
        cls.tls = cls.double("--keepalive", "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", cls.certs.ca)

    def conf(self, http: str, name: str = "nginx.conf") -> str:
        os.makedirs(os.path.join(self.tmp, "conf"), exist_ok=True)
        path = os.path.join(self.tmp, "conf", name)
        with open(path, "w") as f:
            f.write("events {}\nhttp {\n" + http + "\n}\n")
        return path

    def test_nodes_tokens_tls_and_the_smallest_timeout(self):
        # Relative paths are taken from the configuration's directory, as nginx does.
        conf = self.conf(f"""
    include ase.d/*.conf;
    ase_token_file {self.token_file};
    ase_timeout 40s;
    ase_ssl_trusted_certificate ../ca.crt;
    ase_ssl_certificate ../client.crt;
    ase_ssl_certificate_key ../client.key;
    ase_upstream payments {{
        server https://127.0.0.1:{self.tls.port} max_fails=2;
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:1;
        location /slow {{ ase_timeout 50s; }}
        location /fast {{ ase_timeout 30s; }}
    }}""")
        os.makedirs(os.path.join(self.tmp, "conf", "ase.d"), exist_ok=True)
        with open(os.path.join(self.tmp, "conf", "ase.d", "nodes.conf"), "w") as f:
            f.write(f"ase_server http://127.0.0.1:{self.plain.port} fail_timeout=10s;\n")
        r = ase_check("--conf", conf, "-n", "3", "--rate", "1000", timeout="")
        self.assertEqual(r.rc, 0, r)
        nodes = r.report["nodes"]
        self.assertEqual([(n["url"], n["group"]) for n in nodes],
                         [(f"http://127.0.0.1:{self.plain.port}", "default"),
                          (f"https://127.0.0.1:{self.tls.port}", "payments")], r)
        self.assertTrue(nodes[0]["where"].endswith("ase.d/nodes.conf:1"), nodes[0])
        self.assertVerdicts(r, ALL_OK, 0, node=0)
        self.assertVerdicts(r, {**ALL_OK, "tls": "ok"}, 0, node=1)
        s = r.report["settings"]
        self.assertEqual(s["timeout_ms"], 30000)
        self.assertIn("nginx.conf:", s["timeout_source"])
        self.assertIn("smallest of 3", s["timeout_source"])
        self.assertEqual(s["ca"], os.path.join(self.tmp, "ca.crt"))
        self.assertEqual(r.checks(1)["token"]["details"]["token"], self.token_file)

    def test_an_upstreams_own_token_file(self):
        self.write("payments.token", "zyxwvutsrqponmlkjihgfedcba987654\n")  # not the double's
        conf = self.conf(f"""
    ase_server http://127.0.0.1:{self.plain.port};
    ase_token_file {self.token_file};
    ase_upstream payments {{
        server http://127.0.0.1:{self.plain.port} backup;
        token_file ../payments.token;
    }}""", "upstream.conf")
        r = ase_check("--conf", conf, "-n", "2", "--rate", "1000")
        self.assertVerdicts(r, ALL_OK, 1, node=0)
        self.assertVerdicts(r, {"token": "fail"}, 1, node=1)
        self.assertTrue(r.report["nodes"][1]["backup"])
        self.assertEqual(r.report["nodes"][1]["token"], os.path.join(self.tmp, "payments.token"))
        # --token-file wins over the configuration's tokens.
        r = ase_check("--conf", conf, "--token-file", self.token_file, "-n", "2", "--rate", "1000")
        self.assertEqual(r.rc, 0, r)

    def test_the_default_timeout_and_verification_off(self):
        conf = self.conf(f"""
    ase_server https://127.0.0.1:{self.tls.port};
    ase_token_file {self.token_file};
    ase_ssl_verify off;
    ase_ssl_certificate ../client.crt;
    ase_ssl_certificate_key ../client.key;""", "noverify.conf")
        r = ase_check("--conf", conf, "-n", "2", "--rate", "1000", timeout="")
        self.assertVerdicts(r, {**ALL_OK, "tls": "warn"}, 0)
        self.assertEqual((r.report["settings"]["timeout_ms"], r.report["settings"]["timeout_source"]),
                         (500, "the default"))

    def test_an_inline_token_is_used_and_never_shown(self):
        conf = self.conf(f"""
    ase_server http://127.0.0.1:{self.plain.port};
    ase_token "{TOKEN}";""", "inline.conf")
        r = ase_check("--conf", conf, "-n", "2", "--rate", "1000")
        self.assertVerdicts(r, ALL_OK, 0)
        self.assertIn("ase_token in ", r.report["nodes"][0]["token"])
        self.assertNotIn(TOKEN, r.out + r.err)
        r = ase_check("--conf", conf, "-n", "2", "--rate", "1000", json_out=False)
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn(TOKEN, r.out + r.err)

    def test_urls_on_the_command_line_are_added(self):
        conf = self.conf(f"""
    ase_server http://127.0.0.1:{self.plain.port};
    ase_token_file {self.token_file};""", "added.conf")
        r = ase_check("--conf", conf, f"http://127.0.0.1:{self.plain.port}/", "-n", "2", "--rate", "1000")
        self.assertEqual(len(r.report["nodes"]), 1, "the same node, with the same token, once")
        r = ase_check("--conf", conf, f"http://localhost:{self.plain.port}", "--resolve", "localhost:127.0.0.1",
                      "-n", "2", "--rate", "1000")
        self.assertEqual(len(r.report["nodes"]), 2, r)
        self.assertVerdicts(r, ALL_OK, 0, node=1)

    def test_configurations_it_cannot_use(self):
        bad = self.conf("ase_server http://127.0.0.1:1", "syntax.conf")  # no ";"
        r = ase_check("--conf", bad, json_out=False)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("syntax.conf", r.err)
        none = self.conf("ase_timeout 1s;", "none.conf")
        r = ase_check("--conf", none, json_out=False)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("no ase_server", r.err)
        missing = self.conf("ase_server http://127.0.0.1:1;\nase_token_file nowhere.token;", "missing.conf")
        r = ase_check("--conf", missing, json_out=False)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("nowhere.token", r.err)
        badurl = self.conf("ase_server http://127.0.0.1:1/ase;", "url.conf")
        r = ase_check("--conf", badurl, json_out=False)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("url.conf:3", r.err)
        r = ase_check("--conf", os.path.join(self.tmp, "absent.conf"), json_out=False)
        self.assertEqual(r.rc, 2, r)
