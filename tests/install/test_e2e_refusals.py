"""scripts/install.sh's refusals and other paths: dry run, nginx -t failing on the result,
flags it refuses, an nginx it cannot install into, settings changed by a second install,
modules replaced, defaults from nginx -V, --conf on a copy whose includes name the real
directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import MODS, MODULE_FILES, NGINX, ROOT, InstallCase, cmp, read, same  # noqa: E402

S1 = "http://127.0.0.1:9999"


def prepend_line(path: str, line: str) -> None:
    with open(path, "rb") as f:
        s = f.read()
    with open(path, "wb") as f:
        f.write(line.encode() + b"\n" + s)


class Refusals(InstallCase):
    def test_dry_run(self):
        self.prepare("nginx-org", "dry")
        r = self.install("--ase-server", S1, "--enable-location", "/", "--dry-run")
        self.check("dry run: succeeds and prints the diff", r.succeeded(r"^[+]load_module .*ngx_ase_common_module.so;"))
        self.check("dry run: changes nothing", self.no_change())
        self.check("dry run: backs up nothing", not os.path.exists(f"{self.w}/backups"))

    def test_bad_url(self):
        self.prepare("nginx-org", "badurl")
        r = self.install("--ase-server", "ftp://bad.example", "--enable-location", "/")
        self.check("bad ASE URL: install fails", r.rc != 0)
        self.check("bad ASE URL: prints nginx's message", r.has("nginx -t failed") and r.has("emerg.*ase_server"))
        self.check("bad ASE URL: every file restored, no module left", self.no_change())
        self.check("bad ASE URL: the backup was taken first",
                   cmp(f"{self.w}/orig/nginx.conf", self.backup_dir_of("install") + self.conf))

    def test_refusals_that_change_nothing(self):
        self.prepare("nginx-org", "refuse")
        os.chmod(self.token, 0o644)
        try:
            r = self.install("--ase-server", S1, "--token-file", self.token)
        finally:
            os.chmod(self.token, 0o600)
        self.check("world-readable token file: refused", r.refused("world readable"))
        r = self.install("--ase-server", S1, "--token-file", f"{self.tmp}/no-such-token")
        self.check("missing token file: refused", r.refused("no such file"))
        r = self.install("--ase-server", S1, "--enable-location", "/no-such-location")
        self.check("unknown --enable-location: refused", r.refused("no location /no-such-location"))
        r = self.install()
        self.check("no --ase-server: refused", r.refused("ase-server"))
        r = self.install("--uninstall")
        self.check("uninstall when not installed: nothing to do", r.succeeded("nothing to do"))
        # An nginx without --with-compat, and one the modules were not built for: a wrapper around
        # the real binary that changes what -V says, or what -t says about the modules.
        nocompat = self.write_fake("nginx-nocompat", """
if [ "$1" = -V ]; then "$NGINX" -V 2>&1 | sed 's/ --with-compat//' >&2; exit 0; fi
exec "$NGINX" "$@"
""")
        other = self.write_fake("nginx-other-version", """
if [ "$1" = -V ]; then "$NGINX" -V 2>&1 | sed 's|nginx/[0-9.]*|nginx/1.24.0|' >&2; exit 0; fi
if [ "$1" = -t ] && grep -q '^events {}' "$3"; then
    echo "nginx: [emerg] module \\"$(sed -n '1s/.*"\\(.*\\)".*/\\1/p' "$3")\\" version 1022001 instead of 1024000 in $3:1" >&2
    exit 1
fi
exec "$NGINX" "$@"
""")
        r = self.install("--nginx", nocompat, "--ase-server", S1)
        self.check("nginx without --with-compat: refused", r.refused("with-compat"))
        r = self.install("--nginx", other, "--ase-server", S1)
        self.check("modules built for another nginx version: refused", r.refused(r"built for nginx 1.22.1, but .* is nginx 1.24.0"))
        vendored = os.path.join(ROOT, "build", "vendored", "sbin", "nginx")
        if os.access(vendored, os.X_OK):
            r = self.install("--nginx", vendored, "--ase-server", S1)
            self.check("system-built modules into the vendored nginx 1.28: refused",
                       r.refused(r"built for nginx 1.22.1, but .* is nginx 1.28"))
        self.check("refusals: nothing was changed by any of them", self.no_change())
        self.check("refusals: no backup taken", not os.path.exists(f"{self.w}/backups"))

    def test_already_broken(self):
        self.prepare("nginx-org", "broken")
        for p in (self.conf, f"{self.w}/orig/nginx.conf"):
            with open(p, "ab") as f:
                f.write(b"no_such_directive on;\n")
        r = self.install("--ase-server", S1)
        self.check("already broken configuration: refused, unchanged", r.refused("before any change"))
        self.check("already broken configuration: nothing changed", self.no_change())

    def test_unmanaged_load_module(self):
        self.prepare("nginx-org", "unmanaged")
        for p in (self.conf, f"{self.w}/orig/nginx.conf"):
            prepend_line(p, f"load_module {MODS}/ngx_ase_common_module.so;")
        r = self.install("--ase-server", S1)
        self.check("unmanaged load_module of ngx-ase: refused", r.refused("already loads"))
        self.check("unmanaged load_module of ngx-ase: nothing changed", self.no_change())

    def test_changing_the_settings(self):
        self.prepare("nginx-org", "change")
        self.install("--ase-server", S1, "--enable-location", "/")
        r = self.install("--ase-server", "http://127.0.0.1:7777", "--enable-all", "--timeout", "2s")
        ase = read(f"{self.w}/conf/ase.conf") or b""
        self.check("new settings: install", r.rc == 0)
        self.check("new settings: ase.conf has the new server",
                   re.search(rb"^ase_server http://127.0.0.1:7777;", ase, re.M) is not None)
        self.check("new settings: ase.conf lost the old server", b"9999" not in ase)
        self.check("new settings: the location lines were taken out", b"ase_request on;" not in read(self.conf))
        self.check("new settings: load_module lines still there once", self.our_load_modules() == MODULE_FILES)
        self.check("new settings: nginx -t", self.nginx_t())
        self.install("--uninstall")
        self.check("new settings: uninstall gives back the original", self.no_change())

    def test_replacing_installed_modules(self):
        self.prepare("nginx-org", "replace")
        w, src = self.w, f"{self.w}/src"
        os.makedirs(src)
        for m in MODULE_FILES:
            shutil.copy2(os.path.join(MODS, m), src)
        r = self.install("--ase-server", S1, "--modules-from", src)
        self.check("first install from a copy of the modules", r.rc == 0)
        resp, common = f"{w}/mods/ngx_http_ase_response_module.so", f"{w}/mods/ngx_ase_common_module.so"
        before = os.stat(resp).st_ino if os.path.exists(resp) else None
        other = os.stat(common).st_ino if os.path.exists(common) else None
        with open(f"{src}/ngx_http_ase_response_module.so", "ab") as f:
            f.write(b"\0")  # a "rebuilt" module (trailing byte: still loads)
        r = self.install("--ase-server", S1, "--modules-from", src)
        self.check("replaced module: install succeeds", r.rc == 0)
        self.check("replaced module: says restart, not reload", r.succeeded("RESTART nginx .* do NOT reload"))
        self.check("replaced module: a new inode", os.stat(resp).st_ino != before)
        self.check("replaced module: the content of the new build", cmp(resp, f"{src}/ngx_http_ase_response_module.so"))
        self.check("replaced module: unchanged modules keep their inode", os.stat(common).st_ino == other)
        self.check("replaced module: nginx -t", self.nginx_t())
        self.install("--uninstall")
        self.check("replaced module: uninstall gives back the original", self.no_change())

    def test_uninstall_after_an_edit(self):
        self.prepare("debian", "edited")
        self.install("--ase-server", S1, "--enable-location", "/")
        for p in (f"{self.w}/conf/sites-available/default", f"{self.w}/orig/sites-available/default"):
            prepend_line(p, "# edited by the operator after the install")
        r = self.install("--uninstall")
        self.check("edited since: uninstall succeeds with a warning", r.succeeded("edited since"))
        self.check("edited since: only ngx-ase's lines taken out", self.no_change())

    def test_defaults_from_nginx_v(self):
        self.prepare("debian", "defaults")
        w = self.w
        fakebin = os.path.join(self.tmp, "fakebin")
        os.makedirs(fakebin, exist_ok=True)
        fake = os.path.join(fakebin, "nginx")
        with open(fake, "w") as f:
            f.write(f"""#!/bin/sh
if [ "$1" = -V ]; then
    "{NGINX}" -V 2>&1 | sed -e 's#--conf-path=[^ ]*#--conf-path={self.conf}#' -e 's#--modules-path=[^ ]*#--modules-path={w}/mods#' >&2
    exit 0
fi
exec "{NGINX}" "$@"
""")
        os.chmod(fake, 0o755)
        env = dict(os.environ, PATH=fakebin + os.pathsep + os.environ["PATH"])
        r = self.install_raw(f"--ase-server={S1}", f"--backup-dir={w}/backups", env=env)
        self.check("defaults: install into nginx -V's conf-path and modules-path",
                   r.succeeded(re.escape(f"installing ngx-ase into {self.conf} (nginx ") + r"[0-9.]+"
                               + re.escape(f", {fake}; modules to {w}/mods)")))
        self.check("defaults: modules installed", self.mods() == MODULE_FILES)
        self.check("defaults: nginx -t", self.nginx_t())
        r = self.install_raw("--uninstall", f"--backup-dir={w}/backups", env=env)
        self.check("defaults: uninstall", r.rc == 0)
        self.check("defaults: uninstall gives back the original", self.no_change())

    def test_conf_copy_with_absolute_includes(self):
        self.prepare("debian", "outside")
        w = self.w
        # <w>/conf plays the real /etc/nginx; <w>/copy is the operator's copy of it, whose
        # nginx.conf still includes <w>/conf/modules-enabled/*.conf, ... by absolute path.
        subprocess.run(["cp", "-a", f"{w}/conf", f"{w}/copy"], check=True)
        subprocess.run(["cp", "-a", f"{w}/copy", f"{w}/copy-orig"], check=True)
        copy = ["--conf", f"{w}/copy/nginx.conf", "--modules-dir", f"{w}/mods", "--backup-dir", f"{w}/backups"]
        flags = ["--ase-server", S1, "--enable-location", "/"]
        r = self.install_raw(*copy, *flags)
        self.check("outside the --conf directory: refused, naming the first file outside",
                   r.refused("^error: " + re.escape(f"{w}/conf/modules-enabled/50-ngx-ase.conf is outside {w}/copy, "
                                                    "the directory of --conf")))
        self.check("outside the --conf directory: the refusal is one line",
                   len([l for l in r.out.splitlines() if l.startswith("error:")]) == 1
                   and len(r.out.strip().splitlines()) == 2)
        self.check("outside the --conf directory: the real directory is unchanged, no module installed", self.no_change())
        self.check("outside the --conf directory: the copy is unchanged", same(f"{w}/copy-orig", f"{w}/copy"))
        r = self.install_raw(*copy, *flags, "--dry-run")
        self.check("outside the --conf directory: --dry-run refuses too", r.refused(re.escape(f"is outside {w}/copy")))
        r = self.install_raw(*copy, *flags, "--allow-outside-conf-dir")
        self.check("--allow-outside-conf-dir: install succeeds", r.rc == 0)
        self.check("--allow-outside-conf-dir: the files outside were patched",
                   b"ngx_ase_common_module" in (read(f"{w}/conf/modules-enabled/50-ngx-ase.conf") or b""))
        self.check("--allow-outside-conf-dir: nginx -t on the copy",
                   self.nginx("-t", "-c", f"{w}/copy/nginx.conf", "-e", "stderr").returncode == 0)
        r = self.install_raw(*copy, "--uninstall")
        self.check("--allow-outside-conf-dir: uninstall succeeds without the flag", r.rc == 0)
        self.check("--allow-outside-conf-dir: uninstall gives back the real directory, no module left", self.no_change())
        self.check("--allow-outside-conf-dir: uninstall gives back the copy", same(f"{w}/copy-orig", f"{w}/copy"))
        self.check("--allow-outside-conf-dir: stat-identical", self.same_stat())
        r = self.install_raw("--conf", f"{w}/copy/./nginx.conf", "--modules-dir", f"{w}/mods", "--backup-dir",
                             f"{w}/backups", *flags)
        self.check("outside the --conf directory: a path with ./ in it is refused as well",
                   r.refused(re.escape(f"is outside {w}/copy")))
        self.check("outside the --conf directory: still nothing changed", self.no_change())

    def test_lua_block_added_after_the_install(self):
        self.prepare("lua", "lua-later")
        self.install("--ase-server", S1, "--enable-location", "/")
        for p in (self.conf, f"{self.w}/orig/nginx.conf"):
            s = read(p)
            s = re.sub(rb"(?m)^        listen 127.0.0.1:8080;$",
                       lambda m: m.group(0) + b'\n        location /later { content_by_lua_block { ngx.say("} {") } }', s)
            with open(p, "wb") as f:
                f.write(s)
        r = self.install("--uninstall")
        self.check("Lua block added after the install: uninstall succeeds", r.rc == 0)
        self.check("Lua block added after the install: original restored", self.no_change())
        self.check("Lua block added after the install: nginx -t", self.nginx_t())


if __name__ == "__main__":
    unittest.main()
