"""scripts/ase-check against the double serving TLS: the right certificate (by address and by
name), a certificate for another name, a CA that did not sign it, verification off, and
mutual TLS with and without a client certificate. Where TLS does not verify, no call (and so
no token) reaches the double."""

from __future__ import annotations

from harness import CheckCase, Certs, ase_check

ALL_OK = {"reach": "ok", "tls": "ok", "token": "ok", "keepalive": "ok", "unknown_api": "ok", "malformed": "ok",
          "latency": "ok"}
TLS_FAILED = {"reach": "ok", "tls": "fail", "token": "skip", "keepalive": "skip", "unknown_api": "skip",
              "malformed": "skip", "latency": "skip"}


class Tls(CheckCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certs = Certs(cls.tmp)
        cert, key = cls.certs.server
        cls.ase = cls.double("--keepalive", "--tls-cert", cert, "--tls-key", key)
        cert, key = cls.certs.other_name
        cls.other = cls.double("--keepalive", "--tls-cert", cert, "--tls-key", key)

    def check(self, url, *args):
        return ase_check(url, "--token-file", self.token_file, "-n", "3", "--rate", "1000", *args)

    def test_the_right_certificate_by_address(self):
        r = self.check(self.ase.url("https"), "--ca", self.certs.ca)
        self.assertVerdicts(r, ALL_OK, 0)
        tls = r.checks()["tls"]
        self.assertIn("verifies for the address 127.0.0.1", tls["message"])
        self.assertIn(tls["details"]["version"], ("TLSv1.2", "TLSv1.3"))

    def test_the_right_certificate_by_name(self):
        r = self.check(self.ase.url("https", "ase.test"), "--ca", self.certs.ca, "--resolve", "ase.test:127.0.0.1")
        self.assertVerdicts(r, ALL_OK, 0)
        self.assertIn('verifies for "ase.test"', r.checks()["tls"]["message"])
        self.assertEqual(r.report["nodes"][0]["address"], f"127.0.0.1:{self.ase.port}")

    def test_a_name_the_certificate_does_not_hold(self):
        before = len(self.ase.records())
        r = self.check(self.ase.url("https", "ase.elsewhere"), "--ca", self.certs.ca,
                       "--resolve", "ase.elsewhere:127.0.0.1")
        self.assertVerdicts(r, TLS_FAILED, 1)
        self.assertIn("mismatch", r.checks()["tls"]["message"])
        self.assertEqual(len(self.ase.records()), before, "nothing was sent")

    def test_a_certificate_for_another_name(self):
        before = len(self.other.records())
        r = self.check(self.other.url("https"), "--ca", self.certs.ca)
        self.assertVerdicts(r, TLS_FAILED, 1)
        tls = r.checks()["tls"]
        self.assertIn("does not verify for the address 127.0.0.1", tls["message"])
        self.assertIn("mismatch", tls["details"]["error"])
        self.assertIn("a certificate for the address 127.0.0.1", tls["advice"])
        self.assertEqual(len(self.other.records()), before, "nothing was sent")

    def test_a_ca_that_did_not_sign_it(self):
        before = len(self.ase.records())
        r = self.check(self.ase.url("https"), "--ca", self.certs.other_ca)
        self.assertVerdicts(r, TLS_FAILED, 1)
        self.assertIn("ase_ssl_trusted_certificate", r.checks()["tls"]["advice"])
        # Nor with the system's store.
        r = self.check(self.ase.url("https"))
        self.assertVerdicts(r, TLS_FAILED, 1)
        self.assertIn("the system's CA store", r.checks()["tls"]["advice"])
        self.assertEqual(len(self.ase.records()), before, "nothing was sent")

    def test_verification_off_works_and_says_what_it_costs(self):
        r = self.check(self.other.url("https"), "--no-verify")
        self.assertVerdicts(r, {**ALL_OK, "tls": "warn"}, 0)
        self.assertIn("ase_ssl_verify", r.checks()["tls"]["message"])

    def test_plain_http_to_a_tls_port(self):
        r = self.check(self.ase.url("http"))
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.verdicts()["token"], "fail", r)

    def test_tls_to_a_plain_port(self):
        plain = self.double("--keepalive")
        r = self.check(plain.url("https"), "--ca", self.certs.ca)
        self.assertVerdicts(r, {"reach": "ok", "tls": "fail", "token": "skip"}, 1)


class MutualTls(CheckCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certs = Certs(cls.tmp)
        cert, key = cls.certs.server
        cls.ase = cls.double("--keepalive", "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", cls.certs.ca)

    def check(self, *args):
        return ase_check(self.ase.url("https"), "--token-file", self.token_file, "--ca", self.certs.ca,
                         "-n", "3", "--rate", "1000", *args)

    def test_with_the_client_certificate(self):
        cert, key = self.certs.client
        r = self.check("--cert", cert, "--key", key)
        self.assertVerdicts(r, ALL_OK, 0)
        self.assertIn("client certificate", r.checks()["tls"]["message"])

    def test_without_one(self):
        before = len(self.ase.records())
        r = self.check()
        self.assertVerdicts(r, TLS_FAILED, 1)
        self.assertIn("ase_ssl_certificate", r.checks()["tls"]["advice"])
        self.assertEqual(len(self.ase.records()), before, "nothing was served")

    def test_a_certificate_without_its_key_is_a_usage_error(self):
        cert, _ = self.certs.client
        r = ase_check(self.ase.url("https"), "--cert", cert, json_out=False)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("--key", r.err)
