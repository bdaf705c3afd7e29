"""Unit tests of scripts/install/main.py's checks on the result, with /bin/true standing in
for nginx (so `nginx -t` always passes and only the installer's own checks can fail).

Run: python3 -m unittest discover -s tests/install
"""

import contextlib
import io
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "install"))

import cli  # noqa: E402
import main  # noqa: E402
import patch  # noqa: E402
from patch import MODULE_FILES  # noqa: E402

TRUE = shutil.which("true") or "/bin/true"


class IncludeCheck(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(suffix="-br[ack]et")
        self.addCleanup(shutil.rmtree, self.dir)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.orig = b"events {}\nhttp {\n}\n"
        with open(self.conf, "wb") as f:
            f.write(self.orig)
        self.mods_from = os.path.join(self.dir, "from")
        os.mkdir(self.mods_from)
        for m in MODULE_FILES:
            with open(os.path.join(self.mods_from, m), "wb") as f:
                f.write(b"not really a module")

    def run_install(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            a = cli.parse([f"--conf={self.conf}", f"--modules-dir={self.dir}/mods",
                           f"--modules-from={self.mods_from}", f"--backup-dir={self.dir}/backups",
                           "--ase-server=http://127.0.0.1:1"])
            a.command, a.nginx, a.error_log_flag = "install", TRUE, False
            rc = main.main(a)
        return rc, err.getvalue()

    def test_an_include_nginx_would_read_as_a_pattern_is_caught_and_rolled_back(self):
        # The include as it was written before: relative, so nginx globs the "[" of the path.
        real = patch.include_arg
        patch.include_arg = lambda cfg, path: os.path.relpath(path, cfg.prefix)
        self.addCleanup(setattr, patch, "include_arg", real)
        rc, err = self.run_install()
        self.assertEqual(rc, 1)
        self.assertIn("nginx would not read", err)
        with open(self.conf, "rb") as f:
            self.assertEqual(f.read(), self.orig)
        self.assertEqual(sorted(os.listdir(self.dir)), ["backups", "from", "nginx.conf"])

    def test_the_bracketed_include_passes(self):
        rc, err = self.run_install()
        self.assertEqual(rc, 0, err)
        with open(self.conf, "rb") as f:
            self.assertIn(b"[[]ack]et/ase.conf;", f.read())


if __name__ == "__main__":
    unittest.main()
