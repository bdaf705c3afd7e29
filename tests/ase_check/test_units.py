"""The parts of scripts/ase-check that need no ASE: the unknown-API shape, reading an answer by
the modules' rules, what it sends, URLs, times and percentiles."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import unittest

from harness import TOOL


def load_tool():
    loader = importlib.machinery.SourceFileLoader("ase_check_tool", TOOL)
    spec = importlib.util.spec_from_loader("ase_check_tool", loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ase_check_tool"] = mod  # dataclasses look their module up there
    loader.exec_module(mod)
    return mod


T = load_tool()


class UnknownApiShape(unittest.TestCase):
    def test_only_the_ases_own_bodies(self):
        for body in (b"Error: Unknown API", b"Error: Unknown Hostname", b"  Error: Unknown API\r\n",
                     b"\nError: Unknown Hostname\t"):
            self.assertTrue(T.is_unknown_api(503, body), body)
        for body in (b"", b"Error: unknown api", b"Error: Unknown API.", b"Error: Unknown APIs",
                     b'{"error": "Unknown API"}', b"Error: Injected Fault", b"Service Unavailable",
                     b"<html>503 Service Unavailable</html>", b"Error: Unknown API\nError: Unknown API"):
            self.assertFalse(T.is_unknown_api(503, body), body)
        self.assertFalse(T.is_unknown_api(502, b"Error: Unknown API"))
        self.assertFalse(T.is_unknown_api(200, b"Error: Unknown API"))


class ReadingAnswers(unittest.TestCase):
    def parse(self, raw: bytes, eof: bool = False):
        return T.parse_answer(raw, eof)

    def test_keep_alive_as_the_modules_decide_it(self):
        a = self.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual((a.status, a.keep_alive), (200, True))
        a = self.parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        self.assertFalse(a.keep_alive)
        a = self.parse(b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0\r\n\r\n")
        self.assertFalse(a.keep_alive)
        self.assertFalse(self.parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive)
        self.assertTrue(self.parse(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").keep_alive)

    def test_bodies(self):
        raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 18\r\n\r\nError: Unknown APIxx"
        a = self.parse(raw)
        self.assertEqual((a.status, a.body, a.length), (503, b"Error: Unknown API", len(raw) - 2))
        chunked = b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nError: \r\nb\r\nUnknown API\r\n0\r\n\r\n"
        self.assertEqual(self.parse(chunked).body, b"Error: Unknown API")
        self.assertIsNone(self.parse(chunked[:-3]))
        # Without a length, the body ends with the connection, which is then not kept.
        self.assertIsNone(self.parse(b"HTTP/1.1 503 X\r\n\r\nError: Unknown API"))
        a = self.parse(b"HTTP/1.1 503 X\r\n\r\nError: Unknown API", eof=True)
        self.assertEqual((a.body, a.keep_alive), (b"Error: Unknown API", False))
        # An interim answer is skipped.
        a = self.parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(a.status, 401)

    def test_partial_until_complete(self):
        raw = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 23\r\n\r\nError: Malformed Request"[:-1]
        for i in range(len(raw)):
            self.assertIsNone(self.parse(raw[:i]), raw[:i])
        self.assertEqual(self.parse(raw).status, 400)

    def test_what_the_modules_cannot_read(self):
        for raw, eof in ((b"\x00\x01garbage\r\n\r\n", False), (b"HTTP/1.1 020 OK\r\n\r\n", False),
                         (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", False),
                         (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", False),
                         (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", False),
                         (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", True),
                         (b"HTTP/1.1 200 OK\r\nContent-Le", True), (b"", True),
                         (b"\x15\x03\x03\x00\x02\x02\x32", False)):
            with self.assertRaises(T.BadAnswer, msg=raw):
                self.parse(raw, eof)
        with self.assertRaisesRegex(T.BadAnswer, "https://"):
            self.parse(b"\x15\x03\x03\x00\x02\x02\x32")


class WhatItSends(unittest.TestCase):
    def test_a_call_as_the_modules_write_it_with_a_user_agent(self):
        raw = T.request_bytes("ase.example:8000", b"0123456789abcdefghijklmnopqrstuv", "ngx-ase-check-1-1", b"{}")
        self.assertEqual(raw, b"POST /ase/request HTTP/1.1\r\nHost: ase.example:8000\r\n"
                              b"Content-Type: application/json\r\nConnection: keep-alive\r\n"
                              b"ASE-Token: 0123456789abcdefghijklmnopqrstuv\r\nUser-Agent: ngx-ase-check/1\r\n"
                              b"X-CorrelationID: ngx-ase-check-1-1\r\nContent-Length: 2\r\n\r\n{}")
        self.assertNotIn(b"ASE-Token", T.request_bytes("a", None, "c", b"{}"))

    def test_the_probe_and_the_malformed_body(self):
        doc = json.loads(T.probe_body())
        self.assertEqual(list(doc), ["source_ip", "source_port", "method", "url", "http_version", "headers"])
        self.assertEqual(doc["headers"], [{"host": "ngx-ase-check.invalid"}, {"user-agent": "ngx-ase-check/1"}])
        with self.assertRaises(ValueError):
            json.loads(T.malformed_body())
        self.assertIn(b"ngx-ase-check.invalid", T.malformed_body())


class Parsing(unittest.TestCase):
    def test_urls_as_ase_server_takes_them(self):
        u = T.parse_url("http://ase.local:8000")
        self.assertEqual((u.tls, u.host, u.port, u.authority(), u.host_is_name()), (False, "ase.local", 8000,
                                                                                    "ase.local:8000", True))
        u = T.parse_url("HTTPS://10.0.0.5/")
        self.assertEqual((u.tls, u.port, u.authority(), u.host_is_name()), (True, 443, "10.0.0.5", False))
        u = T.parse_url("http://[::1]:8000")
        self.assertEqual((u.host, u.authority(), str(u)), ("::1", "[::1]:8000", "http://[::1]:8000"))
        for bad, why in (("ftp://h", "http:// or https://"), ("http://h:0", "invalid port"),
                         ("http://h:99999", "invalid port"), ("http://h/ase", "only scheme"),
                         ("http://u@h", "user information"), ("http://a:b:80", "brackets"), ("http://", "no host"),
                         ("http://[::1", "unterminated"), ("http://h h", "invalid host")):
            with self.assertRaisesRegex(T.Usage, why, msg=bad):
                T.parse_url(bad)

    def test_times_in_nginx_syntax(self):
        # As nginx -t reads them (proxy_read_timeout on nginx 1.22 and 1.28): a bare number
        # is seconds, "1 1" is two of them, units go from the largest to the smallest.
        for text, ms in (("500ms", 500), ("2s", 2000), ("1m30s", 90000), ("750", 750_000), ("1m 30s", 90000),
                         ("1 1", 2000), (" 5", 5000), ("1s 1", 2000), ("1m30", 90000), ("1h1m1s1ms", 3_661_001),
                         ("9223372036854775807ms", 2**63 - 1), ("9223372036854775", 9_223_372_036_854_775_000)):
            self.assertEqual(T.parse_time_ms(text), ms, text)
        for bad in ("", "s", "ms", " ", "5x", "-1", "1.5s", "1s1m", "1s1s", "1ms1s", "1h1d", "1M", "1y", "1 1 1",
                    "1 1s", "1S", "18446744073709551s", "9223372036854775808ms", "9223372036854776"):
            self.assertIsNone(T.parse_time_ms(bad), bad)

    def test_percentiles_by_nearest_rank(self):
        values = sorted(float(i) for i in range(1, 201))
        self.assertEqual((T.percentile(values, 50), T.percentile(values, 99)), (100.0, 198.0))
        self.assertEqual((T.percentile([7.0], 50), T.percentile([7.0], 99)), (7.0, 7.0))

    def test_tokens_are_trimmed_and_checked_without_being_quoted(self):
        self.assertEqual(T.check_token(b" abc\n", "x"), b"abc")
        with self.assertRaises(T.Usage) as e:
            T.check_token(b"secret with space", "x")
        self.assertNotIn("secret", str(e.exception))


if __name__ == "__main__":
    unittest.main()
