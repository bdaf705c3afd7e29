"""What the installer's end-to-end tests share: copies of the layouts in tests/install/layouts/
with their Debian paths pointed into a temporary directory, scripts/install.sh run on them,
the real `nginx -t`/`nginx -T`, and tree comparisons (bytes, mode, owner, size, links).

These tests need the modules built for the system nginx (scripts/build.sh --nginx system) and
Debian's nginx with the echo and Lua modules; without them they are skipped, saying why
(scripts/test-install.sh installs the packages and refuses to run without the build).
Each check is a subTest, counted one by one by tests/install/run.py."""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import tempfile
import unittest
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INSTALL = os.path.join(ROOT, "scripts", "install.sh")
LAYOUTS = os.path.join(HERE, "layouts")
MODS = os.path.join(ROOT, "build", "system", "modules")
MODULE_FILES = ["ngx_ase_common_module.so", "ngx_http_ase_request_module.so", "ngx_http_ase_response_module.so"]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ECHO_SO = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
LUA_SO = "/usr/lib/nginx/modules/ngx_http_lua_module.so"


def missing() -> Optional[str]:
    """Why the end-to-end tests cannot run here, or None."""
    if not os.access(NGINX, os.X_OK):
        return "no nginx on PATH (apt-get install nginx)"
    for m in MODULE_FILES:
        if not os.path.isfile(os.path.join(MODS, m)):
            return f"{MODS}/{m} not found: run scripts/build.sh --nginx system first"
    for so in (ECHO_SO, LUA_SO):
        if not os.path.isfile(so):
            return f"{so} not found (apt-get install libnginx-mod-http-echo libnginx-mod-http-lua)"
    return None


def read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def same(a: str, b: str) -> bool:
    """Two trees with the same names, file bytes and symlink targets (diff -r --no-dereference)."""
    return subprocess.run(["diff", "-r", "--no-dereference", a, b], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def stat_tree(top: str) -> List[str]:
    """Mode, owner, group, size, link count and type of every entry of a tree."""
    p = subprocess.run(["find", ".", "-printf", "%p %m %U %G %s %n %y\\n"], cwd=top, stdout=subprocess.PIPE)
    return sorted(p.stdout.decode("utf-8", "surrogateescape").splitlines())


def empty_dir(d: str) -> bool:
    try:
        return not os.listdir(d)
    except OSError:
        return True


def cmp(a: str, b: str) -> bool:
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


class Run:
    """The result of one scripts/install.sh run: exit status and stdout+stderr."""

    def __init__(self, rc: int, out: str):
        self.rc, self.out = rc, out

    def has(self, pattern: str) -> bool:
        return re.search(pattern, self.out, re.M) is not None

    def refused(self, pattern: str) -> bool:
        return self.rc != 0 and self.has(pattern)

    def succeeded(self, pattern: str) -> bool:
        return self.rc == 0 and self.has(pattern)


def run_install(args: List[str], env: Optional[dict] = None) -> Run:
    p = subprocess.run([INSTALL] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    return Run(p.returncode, p.stdout.decode("utf-8", "replace"))


class InstallCase(unittest.TestCase):
    """Base of the end-to-end tests: a temporary directory, prepare(), install(), check()."""

    @classmethod
    def setUpClass(cls):
        why = missing()
        if why:
            raise unittest.SkipTest(why)
        cls.tmp = tempfile.mkdtemp(prefix="ngx-ase-install-test.")
        cls.token = os.path.join(cls.tmp, "token")
        with open(cls.token, "w") as f:
            f.write("abcdefghijklmnopqrstuvwxyz012345\n")
        os.chmod(cls.token, 0o600)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    last: Optional[Run] = None

    # check NAME OK: one assertion, as a subTest so that every check is counted and a failed
    # one does not hide the others; on failure it shows the last install's output.
    def check(self, name: str, ok: bool, detail: Optional[str] = None) -> bool:
        with self.subTest(name):
            if detail is None and self.last is not None:
                detail = self.last.out
            self.assertTrue(ok, f"{name}\n{(detail or '')[-4000:]}")
        return bool(ok)

    def prepare(self, layout: str, key: Optional[str] = None, hook=None) -> None:
        """Copies LAYOUT to <tmp>/KEY/conf with /etc/nginx, /var/log/nginx and /run/nginx.pid
        pointed into the copy, and a pristine copy in <tmp>/KEY/orig."""
        w = self.w = os.path.join(self.tmp, key or layout)
        shutil.rmtree(w, ignore_errors=True)
        for d in ("mods", "log", "run", "prefix"):
            os.makedirs(os.path.join(w, d))
        conf_dir = os.path.join(w, "conf")
        subprocess.run(["cp", "-a", os.path.join(LAYOUTS, layout), conf_dir], check=True)
        for dirpath, _, files in os.walk(conf_dir):
            for name in files:
                p = os.path.join(dirpath, name)
                if os.path.islink(p):
                    continue
                s = read(p)
                t = (s.replace(b"/etc/nginx", conf_dir.encode()).replace(b"/var/log/nginx", f"{w}/log".encode())
                     .replace(b"/run/nginx.pid", f"{w}/run/nginx.pid".encode()))
                if t != s:
                    st = os.stat(p)
                    with open(p, "r+b") as f:  # in place: sed -i keeps mode, owner, links
                        f.write(t)
                        f.truncate()
                    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        self.conf = os.path.join(conf_dir, "nginx.conf")
        if hook:
            hook()
        subprocess.run(["cp", "-a", conf_dir, os.path.join(w, "orig")], check=True)
        self.base = ["--conf", self.conf, "--modules-dir", f"{w}/mods", "--backup-dir", f"{w}/backups"]
        self.ngx_t = ["-c", self.conf, "-e", "stderr"]
        # Debian's own layout loads modules/... relative to the compiled prefix; the others
        # keep their pid file in a prefix of their own.
        if layout != "debian":
            self.base += ["--prefix", f"{w}/prefix"]
            self.ngx_t += ["-p", f"{w}/prefix/"]

    def install(self, *args: str, env: Optional[dict] = None) -> Run:
        self.last = run_install(self.base + list(args), env)
        return self.last

    def install_raw(self, *args: str, env: Optional[dict] = None) -> Run:
        self.last = run_install(list(args), env)
        return self.last

    def nginx(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([NGINX] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def nginx_t(self) -> bool:
        return self.nginx("-t", *self.ngx_t).returncode == 0

    def nginx_t_out(self) -> str:
        return self.nginx("-t", *self.ngx_t).stdout.decode("utf-8", "replace")

    def nginx_dump(self) -> str:
        p = subprocess.run([NGINX, "-T"] + self.ngx_t, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return p.stdout.decode("utf-8", "replace")

    def our_load_modules(self) -> List[str]:
        return re.findall(r"^load_module .*/(ngx_[a-z_]*ase[a-z_]*_module\.so);$", self.nginx_dump(), re.M)

    def mods(self) -> List[str]:
        return sorted(os.listdir(f"{self.w}/mods"))

    def inodes(self) -> List[tuple]:
        d = f"{self.w}/mods"
        return sorted((n, os.stat(os.path.join(d, n)).st_ino) for n in os.listdir(d))

    def backups(self) -> int:
        try:
            return len(os.listdir(f"{self.w}/backups"))
        except OSError:
            return 0

    def backup_dir_of(self, kind: str) -> str:
        names = [n for n in os.listdir(f"{self.w}/backups") if n.endswith(f"-{kind}")]
        return os.path.join(self.w, "backups", names[0]) if len(names) == 1 else "/nonexistent"

    def no_change(self) -> bool:
        return same(f"{self.w}/orig", f"{self.w}/conf") and empty_dir(f"{self.w}/mods")

    def same_stat(self) -> bool:
        return stat_tree(f"{self.w}/orig") == stat_tree(f"{self.w}/conf")

    def state_files(self) -> List[str]:
        return [n for n in os.listdir(f"{self.w}/conf") if n.startswith(".ngx-ase-state")]

    def write_fake(self, name: str, body: str) -> str:
        """A shell script standing in for nginx (it wraps the real one)."""
        d = os.path.join(self.tmp, "fake")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, name)
        with open(p, "w") as f:
            f.write("#!/bin/sh\n" + body.replace("$NGINX", NGINX))
        os.chmod(p, 0o755)
        return p
