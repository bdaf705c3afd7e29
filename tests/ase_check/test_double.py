"""scripts/ase-check against the ASE double in each of its modes: keep-alive on and off, a
token required (missing, wrong, right) or not, the API definitions (unknown API, unknown
host name, a catch-all API), faults (a 500, a 503 with another body, a slow answer, a reset,
bytes that are not HTTP), and nothing listening. Each test checks the verdicts and the exit
status."""

from __future__ import annotations

import socket

from harness import TOKEN, CheckCase, ase_check

ALL_OK = {"reach": "ok", "token": "ok", "keepalive": "ok", "unknown_api": "ok", "malformed": "ok", "latency": "ok"}


class KeepAliveOnWithToken(CheckCase):
    """The double as a well set-up ASE: sideband keep-alive and authentication on."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ase = cls.double("--keepalive")

    def test_everything_as_the_modules_need_it(self):
        r = ase_check(self.ase.url(), "--token-file", self.token_file, "-n", "20", "--rate", "1000")
        self.assertVerdicts(r, ALL_OK, 0)
        self.assertTrue(r.report["ok"], r)
        c = r.checks()
        self.assertIn("Error: Unknown API", c["unknown_api"]["message"])
        self.assertEqual(c["token"]["details"]["without_token"], 401)
        self.assertEqual(c["token"]["details"]["wrong_token"], 401)
        lat = c["latency"]["details"]
        self.assertEqual((lat["calls"], lat["answered"], lat["over_timeout"], lat["errors"]), (20, 20, 0, {}))
        self.assertEqual(lat["by_status"], {"503": 20})
        self.assertEqual(lat["timeout_ms"], 60000)
        self.assertTrue(lat["on_kept_connection"] > 0, r)
        for k in ("p50_ms", "p99_ms", "max_ms"):
            self.assertIsInstance(lat[k], (int, float), k)
        self.assertLessEqual(lat["p50_ms"], lat["p99_ms"])
        self.assertLessEqual(lat["p99_ms"], lat["max_ms"])
        self.assertEqual(r.report["summary"], {"ok": 6, "warn": 0, "fail": 0, "skip": 0})

    def test_the_calls_are_few_and_recognisable(self):
        before = len(self.ase.records())
        r = ase_check(self.ase.url(), "--token-file", self.token_file, "-n", "7", "--rate", "1000")
        self.assertEqual(r.rc, 0, r)
        records = self.ase.records()[before:]
        # no-token, token, wrong token, malformed, then -n calls
        self.assertEqual(len(records), 4 + 7, records)
        prefix = r.report["correlation_id_prefix"]
        self.assertTrue(prefix.startswith("ngx-ase-check-"), prefix)
        for rec in records:
            self.assertTrue(rec["correlation_id"].startswith(prefix), rec)
            self.assertEqual(rec["kind"], "request")
        parsed = [rec["body"] for rec in records if isinstance(rec["body"], dict)]
        self.assertEqual(len(parsed), len(records) - 1, "all but the malformed call carry valid metadata")
        for body in parsed:
            self.assertIn({"host": "ngx-ase-check.invalid"}, body["headers"])
            self.assertIn({"user-agent": "ngx-ase-check/1"}, body["headers"])
            self.assertTrue(body["url"].startswith("/ngx-ase-check/"), body)
        malformed = [rec for rec in records if not isinstance(rec["body"], dict)]
        self.assertEqual([m["status"] for m in malformed], [400])
        self.assertEqual(sorted({rec["token"] for rec in records}), ["missing", "ok", "wrong"])

    def test_a_missing_token_is_refused(self):
        r = ase_check(self.ase.url(), "-n", "3", "--rate", "1000")
        self.assertVerdicts(r, {"reach": "ok", "token": "fail", "unknown_api": "skip", "latency": "skip"}, 1)
        self.assertIn("none is configured", r.checks()["token"]["message"])
        self.assertFalse(r.report["ok"])

    def test_a_wrong_token_is_refused(self):
        wrong = self.write("wrong-token", "zyxwvutsrqponmlkjihgfedcba987654\n")
        r = ase_check(self.ase.url(), "--token-file", wrong, "-n", "3", "--rate", "1000")
        self.assertVerdicts(r, {"reach": "ok", "token": "fail", "unknown_api": "skip"}, 1)
        self.assertIn("refuses the token", r.checks()["token"]["message"])

    def test_the_text_report(self):
        r = ase_check(self.ase.url(), "--token-file", self.token_file, "-n", "3", "--rate", "1000", json_out=False)
        self.assertEqual(r.rc, 0, r)
        lines = r.out.splitlines()
        for name in ("reach", "token", "keep-alive", "unknown API", "malformed body", "latency"):
            self.assertTrue(any(l.startswith(f"  ✔ {name}: ") for l in lines), (name, r))
        self.assertEqual(lines[-2], "6 ok, 0 to improve, 0 failed, 0 not checked", r)
        self.assertTrue(lines[-1].startswith("✔ nothing here would make the modules misjudge"), r)
        self.assertNotIn(TOKEN, r.out + r.err)

    def test_a_failure_in_the_text_report_says_what_to_do(self):
        r = ase_check(self.ase.url(), "-n", "3", "--rate", "1000", json_out=False)
        self.assertEqual(r.rc, 1, r)
        line = [l for l in r.out.splitlines() if l.startswith("  ✗ token: ")]
        self.assertEqual(len(line), 1, r)
        self.assertIn("→", line[0])
        self.assertIn("ase_token_file", line[0])
        self.assertTrue(r.out.splitlines()[-1].startswith("✗ "), r)


class KeepAliveOff(CheckCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ase = cls.double()  # without --keepalive: every answer says Connection: close

    def test_keepalive_off_is_reported_with_the_ase_setting(self):
        r = ase_check(self.ase.url(), "--token-file", self.token_file, "-n", "5", "--rate", "1000")
        self.assertVerdicts(r, {**ALL_OK, "keepalive": "warn"}, 0)
        c = r.checks()["keepalive"]
        self.assertIn("enable_sideband_keepalive=true", c["advice"])
        self.assertEqual(r.checks()["latency"]["details"]["on_kept_connection"], 0)

    def test_switched_on_while_running_it_is_seen(self):
        self.ase.keepalive(True)
        try:
            r = ase_check(self.ase.url(), "--token-file", self.token_file, "-n", "3", "--rate", "1000")
        finally:
            self.ase.keepalive(False)
        self.assertVerdicts(r, ALL_OK, 0)


class NoAuthentication(CheckCase):
    """An ASE with sideband authentication off (the double without --token)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ase = cls.double("--keepalive", token=None)

    def test_with_a_token_configured_it_says_authentication_is_off(self):
        r = ase_check(self.ase.url(), "--token-file", self.token_file, "-n", "3", "--rate", "1000")
        self.assertVerdicts(r, {**ALL_OK, "token": "warn"}, 0)
        self.assertIn("authentication is off", r.checks()["token"]["message"])
        self.assertIn("enable_sideband_authentication", r.checks()["token"]["advice"])

    def test_without_a_token_too(self):
        r = ase_check(self.ase.url(), "-n", "3", "--rate", "1000")
        self.assertVerdicts(r, {**ALL_OK, "token": "warn"}, 0)
        self.assertIn("authentication is off", r.checks()["token"]["message"])


class ApiDefinitions(CheckCase):
    def test_an_unknown_host_name_is_the_other_unknown_api_answer(self):
        ase = self.double("--keepalive", apis={"api_metadata": {"url": "/", "hostname": "shop.example"}})
        r = ase_check(ase.url(), "--token-file", self.token_file, "-n", "2", "--rate", "1000")
        self.assertVerdicts(r, ALL_OK, 0)
        self.assertIn("Error: Unknown Hostname", r.checks()["unknown_api"]["message"])

    def test_a_catch_all_api_hides_the_unknown_api_answer(self):
        ase = self.double("--keepalive", apis=None)  # the double's built-in API: url "/", hostname "*"
        r = ase_check(ase.url(), "--token-file", self.token_file, "-n", "2", "--rate", "1000")
        self.assertVerdicts(r, {**ALL_OK, "unknown_api": "warn"}, 0)
        self.assertEqual(r.checks()["unknown_api"]["details"]["status"], 200)


class Faults(CheckCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ase = cls.double("--keepalive")

    def tearDown(self):
        self.ase.clear_fault()

    def test_a_500_is_an_ase_error(self):
        self.ase.fault(kind="status", status=500)
        r = ase_check(self.ase.url(), "--token-file", self.token_file, "-n", "3", "--rate", "1000")
        self.assertVerdicts(r, {"reach": "ok", "token": "fail", "unknown_api": "fail", "malformed": "warn"}, 1)
        self.assertIn("500", r.checks()["unknown_api"]["message"])
        self.assertIn("ASE error", r.checks()["unknown_api"]["message"])

    def test_a_503_with_another_body_is_not_the_unknown_api_answer(self):
        self.ase.fault(kind="status", status=503)  # body "Error: Injected Fault"
        r = ase_check(self.ase.url(), "--token-file", self.token_file, "-n", "3", "--rate", "1000")
        self.assertVerdicts(r, {"reach": "ok", "token": "fail", "unknown_api": "fail", "malformed": "warn"}, 1)
        c = r.checks()["unknown_api"]
        self.assertIn("Error: Injected Fault", c["message"])
        self.assertIn("not the ASE's own unknown-API answer", c["message"])
        self.assertEqual(c["details"], {"status": 503, "body": "Error: Injected Fault"})
        # A 503 that is not the ASE's is no sign that authentication is off.
        self.assertNotIn("authentication is off", r.checks()["token"]["message"])

    def test_a_slow_answer_beyond_ase_timeout(self):
        # Every call waits 1.5 s; ase_timeout 300ms: every latency call is beyond it, however
        # loaded the machine (the delay is a lower bound, never an upper one).
        self.ase.fault(kind="delay", ms=1500, calls="request")
        r = ase_check(self.ase.url(), "--token-file", self.token_file, "-n", "2", "--rate", "1000",
                      "--timeout", "300ms")
        self.assertVerdicts(r, {**ALL_OK, "latency": "fail"}, 1)
        d = r.checks()["latency"]["details"]
        self.assertEqual((d["calls"], d["answered"], d["over_timeout"], d["timeout_ms"]), (2, 2, 2, 300))
        self.assertIn("ase_timeout", r.checks()["latency"]["advice"])

    def test_a_reset_is_no_answer(self):
        self.ase.fault(kind="reset", calls="request")
        r = ase_check(self.ase.url(), "--token-file", self.token_file, "-n", "2", "--rate", "1000")
        self.assertVerdicts(r, {"reach": "ok", "token": "fail", "keepalive": "skip", "unknown_api": "fail",
                                "malformed": "fail", "latency": "fail"}, 1)
        self.assertIn("no answer", r.checks()["token"]["message"])

    def test_bytes_that_are_not_http(self):
        self.ase.fault(kind="garbage", calls="request")
        r = ase_check(self.ase.url(), "--token-file", self.token_file, "-n", "2", "--rate", "1000")
        self.assertVerdicts(r, {"reach": "ok", "token": "fail", "unknown_api": "fail"}, 1)
        self.assertIn("not HTTP", r.checks()["unknown_api"]["message"])


class NothingListening(CheckCase):
    def test_connection_refused(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        r = ase_check(f"http://127.0.0.1:{port}", "--token-file", self.token_file, "-n", "2")
        self.assertVerdicts(r, {"reach": "fail", "token": "skip", "latency": "skip"}, 1)
        self.assertIn("refused", r.checks()["reach"]["message"])

    def test_bad_flags_exit_2(self):
        r = ase_check("ftp://127.0.0.1:1", json_out=False)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("http:// or https://", r.err)
        r = ase_check(json_out=False)
        self.assertEqual(r.rc, 2, r)
        missing = ase_check("http://127.0.0.1:1", "--token-file", "/nonexistent/token", json_out=False)
        self.assertEqual(missing.rc, 2, missing)
        empty = ase_check("http://127.0.0.1:1", "--token-file", self.write("empty", " \n"), json_out=False)
        self.assertEqual(empty.rc, 2, empty)
        self.assertIn("empty", empty.err)


if __name__ == "__main__":
    import unittest
    unittest.main()
