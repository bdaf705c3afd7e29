"""What the tests of scripts/ase-check share: the ASE double (tests/ase-double) as a child
process on loopback ports, its admin API, certificates made with openssl, and a way to run
the tool and read its --json report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from typing import List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOOL = os.path.join(ROOT, "scripts", "ase-check")
TOKEN = "abcdefghij0123456789abcdefghij01"  # the shape create_sideband_token makes
# One API the probe's host and path can never match.
APIS = {"api_metadata": {"url": "/shop", "hostname": "shop.example", "enable_blocking": True}}

_double_bin: Optional[str] = None


def double_bin() -> str:
    """The double's binary: $ASE_DOUBLE_BIN, else built as scripts/test.sh builds it."""
    global _double_bin
    if _double_bin:
        return _double_bin
    path = os.environ.get("ASE_DOUBLE_BIN") or os.path.join(ROOT, "target", "double", "release", "ase-double")
    if not os.environ.get("ASE_DOUBLE_BIN"):
        r = subprocess.run(["nice", "cargo", "build", "-q", "--release", "-p", "ase-double",
                            "--target-dir", os.path.join(ROOT, "target", "double")],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"cargo build -p ase-double failed:\n{r.stdout}")
    if not os.path.isfile(path):
        raise RuntimeError(f"{path} not found")
    _double_bin = path
    return path


class Double:
    """The ASE double with some flags; stopped by stop() (or at the end of the test class)."""

    def __init__(self, *flags: str, apis: Optional[dict] = APIS, token: Optional[str] = TOKEN):
        self.dir = tempfile.mkdtemp(prefix="ase-check-double-")
        args = [double_bin(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--ready-file", os.path.join(self.dir, "ready.json"), "--log", os.path.join(self.dir, "calls.log")]
        if apis is not None:
            path = os.path.join(self.dir, "apis.json")
            with open(path, "w") as f:
                json.dump(apis, f)
            args += ["--apis", path]
        if token is not None:
            path = os.path.join(self.dir, "token")
            with open(path, "w") as f:
                f.write(token + "\n")
            args += ["--token-file", path]
        self.proc = subprocess.Popen(args + list(flags), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ready = os.path.join(self.dir, "ready.json")
        deadline = time.monotonic() + 60
        while not os.path.isfile(ready):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the double exited: {self.proc.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the double did not start within 60 s")
            time.sleep(0.02)
        with open(ready) as f:
            doc = json.load(f)
        self.data, self.admin = doc["data"], doc["admin"]
        self.port = int(self.data.rsplit(":", 1)[1])

    def url(self, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}"

    def admin_call(self, method: str, path: str, body: Optional[dict] = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{self.admin}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def fault(self, **fault) -> None:
        self.admin_call("PUT", "/fault", fault)

    def clear_fault(self) -> None:
        self.admin_call("DELETE", "/fault")

    def keepalive(self, on: bool) -> None:
        self.admin_call("PUT", "/keepalive", {"enabled": on})

    def records(self) -> List[dict]:
        return self.admin_call("GET", "/records")["records"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def openssl(*args: str) -> None:
    r = subprocess.run(["openssl", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stdout}")


class Certs:
    """A CA, server certificates it signed for 127.0.0.1 / localhost and for another name, a
    client certificate, and a second CA that signed nothing here."""

    def __init__(self, d: str):
        self.dir = d
        p = self.p
        for ca in ("ca", "other-ca"):
            openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=test {ca}",
                    "-keyout", p(f"{ca}.key"), "-out", p(f"{ca}.crt"))
        self.ca, self.other_ca = p("ca.crt"), p("other-ca.crt")
        self.server = self._signed("server", "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:ase.test\n")
        self.other_name = self._signed("other", "subjectAltName=DNS:other.example\n")
        self.client = self._signed("client", "extendedKeyUsage=clientAuth\n")

    def p(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _signed(self, name: str, ext: str) -> Tuple[str, str]:
        p = self.p
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", p(f"{name}.key"),
                "-out", p(f"{name}.csr"))
        with open(p(f"{name}.cnf"), "w") as f:
            f.write(ext)
        openssl("x509", "-req", "-in", p(f"{name}.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
                "-CAcreateserial", "-days", "2", "-extfile", p(f"{name}.cnf"), "-out", p(f"{name}.crt"))
        return p(f"{name}.crt"), p(f"{name}.key")


class Result:
    def __init__(self, rc: int, out: str, err: str):
        self.rc, self.out, self.err = rc, out, err
        self.report = json.loads(out) if out.strip().startswith("{") else None

    def checks(self, node: int = 0) -> dict:
        return {c["check"]: c for c in self.report["nodes"][node]["checks"]}

    def verdicts(self, node: int = 0) -> dict:
        return {name: c["verdict"] for name, c in self.checks(node).items()}

    def __repr__(self) -> str:  # shown when an assertion fails
        return f"exit {self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}"


# Generous: the tests are never about time, except the slow-answer one, which is about a
# delay far longer than the ase_timeout it is given.
WAIT = ["--wait", "60"]


def ase_check(*args: str, json_out: bool = True, timeout: str = "60s") -> Result:
    argv = [sys.executable, "-B", TOOL, *args, *WAIT]
    if timeout and "--timeout" not in args:
        argv += ["--timeout", timeout]
    if json_out:
        argv.append("--json")
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600,
                       env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    return Result(r.returncode, r.stdout, r.stderr)


class CheckCase(unittest.TestCase):
    """A test class with a temporary directory holding the token file."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ase-check-test-")
        cls.token_file = os.path.join(cls.tmp, "token")
        with open(cls.token_file, "w") as f:
            f.write(TOKEN + "\n")
        cls.doubles: List[Double] = []

    @classmethod
    def tearDownClass(cls):
        for d in cls.doubles:
            d.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def double(cls, *flags: str, **kw) -> Double:
        d = Double(*flags, **kw)
        cls.doubles.append(d)
        return d

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def assertVerdicts(self, r: Result, expected: dict, rc: int, node: int = 0) -> None:
        self.assertIsNotNone(r.report, r)
        got = r.verdicts(node)
        self.assertEqual({k: got.get(k) for k in expected}, expected, r)
        self.assertEqual(r.rc, rc, r)
