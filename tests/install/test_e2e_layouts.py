"""scripts/install.sh on copies of real nginx layouts (tests/install/layouts/): install,
`nginx -t`, a second install changes nothing, uninstall gives back the original bytes."""

from __future__ import annotations

import os
import re
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import ECHO_SO, MODULE_FILES, InstallCase, cmp, empty_dir, read, same  # noqa: E402

S1, S2 = "http://127.0.0.1:9999", "http://127.0.0.1:9998"


class Layouts(InstallCase):
    def cycle(self, layout: str, want: int, *flags: str, after=None) -> None:
        """WANT: how many `ase_request on;` lines the installed configuration has (nginx -T)."""
        self.prepare(layout)
        if not self.check(f"{layout}: nginx -t on the untouched copy", self.nginx_t(), self.nginx_t_out()):
            return
        w = self.w
        r = self.install(*flags)
        self.check(f"{layout}: install", r.rc == 0)
        self.check(f"{layout}: nginx -t after install", self.nginx_t())
        self.check(f"{layout}: the three load_module lines, once each, in order", self.our_load_modules() == MODULE_FILES)
        self.check(f"{layout}: ase_request on in {want} place(s)", self.nginx_dump().count("ase_request on;") == want)
        self.check(f"{layout}: modules installed", self.mods() == MODULE_FILES)
        if after:
            after()
        shutil.rmtree(f"{w}/after1", ignore_errors=True)
        shutil.copytree(f"{w}/conf", f"{w}/after1", symlinks=True)
        ino, nbk = self.inodes(), self.backups()
        r = self.install(*flags)
        self.check(f"{layout}: second install succeeds, says nothing changed", r.has("nothing changed"))
        self.check(f"{layout}: second install changed no byte", same(f"{w}/after1", f"{w}/conf"))
        self.check(f"{layout}: second install kept the module files (same inodes)", self.inodes() == ino)
        self.check(f"{layout}: second install made no backup", self.backups() == nbk)
        self.check(f"{layout}: nginx -t after second install", self.nginx_t())
        r = self.install("--uninstall")
        self.check(f"{layout}: uninstall", r.rc == 0)
        self.check(f"{layout}: after uninstall the tree is byte-identical to the original", same(f"{w}/orig", f"{w}/conf"))
        self.check(f"{layout}: after uninstall every file has its mode, owner, size and links", self.same_stat())
        self.check(f"{layout}: uninstall removed the modules", empty_dir(f"{w}/mods"))
        self.check(f"{layout}: nginx -t after uninstall", self.nginx_t())

    def test_debian(self):
        def after():
            w = self.w
            self.check("debian: load_module lines in modules-enabled/50-ngx-ase.conf",
                       b"ngx_ase_common_module" in (read(f"{w}/conf/modules-enabled/50-ngx-ase.conf") or b""))
            self.check("debian: ase.conf in conf.d/",
                       re.search(rb"^ase_token_file ", read(f"{w}/conf/conf.d/ase.conf") or b"", re.M) is not None)
            self.check("debian: nginx.conf itself untouched", cmp(f"{w}/orig/nginx.conf", f"{w}/conf/nginx.conf"))
            self.check("debian: sites-enabled/default is still a symlink", os.path.islink(f"{w}/conf/sites-enabled/default"))
            self.check("debian: sites-available/default keeps its mode",
                       os.stat(f"{w}/orig/sites-available/default").st_mode
                       == os.stat(f"{w}/conf/sites-available/default").st_mode)
            self.check("debian: timestamped backup of the changed file",
                       cmp(f"{w}/orig/sites-available/default",
                           self.backup_dir_of("install") + f"{w}/conf/sites-available/default"))
        self.cycle("debian", 1, "--ase-server", S1, "--ase-backup", S2, "--token-file", self.token, "--fail-mode",
                   "closed", "--connect-timeout", "100ms", "--timeout", "1s", "--enable-location", "/", after=after)

    def test_nginx_org(self):
        def after():
            w = self.w
            self.check("nginx-org: ase.conf next to nginx.conf, included in http",
                       re.search(rb"^ *include ase.conf;", read(self.conf), re.M) is not None)
            self.check("nginx-org: backup servers and max_fails",
                       re.search(rb"^ase_server http://127.0.0.1:9998 backup max_fails=3 fail_timeout=10s;",
                                 read(f"{w}/conf/ase.conf") or b"", re.M) is not None)
        self.cycle("nginx-org", 1, "--ase-server", S1, "--ase-backup", S2, "--max-fails", "3", "--fail-timeout", "10s",
                   "--enable-location", "/", after=after)

    def test_tricky(self):
        self.cycle("tricky", 2, "--ase-server", S1, "--enable-location", "/api", "--enable-location", "/with space")

    def test_includes(self):
        def after():
            w = self.w
            self.check("includes: files outside the include globs untouched",
                       cmp(f"{w}/orig/vhosts/c.conf", f"{w}/conf/vhosts/c.conf"))
            lines = read(f"{w}/conf/vhosts/b.vhost").split(b"\n")
            self.check("includes: the CRLF file keeps CRLF line ends", all(l.endswith(b"\r") for l in lines[:-1]))
        self.cycle("includes", 2, "--ase-server", S1, "--enable-location", "/api", after=after)

    def test_split(self):
        self.cycle("split", 1, "--ase-server", S1, "--enable-location", "/api")

    def test_existing_load_module(self):
        def after():
            first = re.search(rb"^load_module.*$", read(self.conf), re.M)
            self.check("existing-load-module: its own load_module stays first",
                       first is not None and first.group(0) == f"load_module {ECHO_SO};".encode())
        self.cycle("existing-load-module", 1, "--ase-server", S1, "--enable-all", after=after)

    def test_lua(self):
        def after():
            conf = read(self.conf)
            stripped = re.sub(rb"(?ms)^[^\n]*# ngx-ase: managed begin.*?# ngx-ase: managed end[^\n]*\n", b"", conf)
            self.check("lua: every Lua block byte-identical (no line inserted into one)",
                       stripped == read(f"{self.w}/orig/nginx.conf"))
            self.check("lua: ase_request in the location with the Lua block, not in it",
                       re.search(rb"location / \{\n *# ngx-ase: managed begin \(location / #[0-9]+\)\n *ase_request on;",
                                 conf) is not None)
        self.cycle("lua", 2, "--ase-server", S1, "--enable-location", "/", "--enable-location", "/api", after=after)


if __name__ == "__main__":
    unittest.main()
