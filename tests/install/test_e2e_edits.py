"""scripts/install.sh on configurations the operator keeps working on: two main files in one
directory, duplicate blocks plus an edit, a syntax error, managed lines taken out by hand,
edits to ase.conf, hard links and extended attributes, a directory it created, a "[" in the
path, the messages of its refusals, and --help."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import INSTALL, MODULE_FILES, ROOT, InstallCase, cmp, read  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "scripts", "install"))

import cli  # noqa: E402

S1 = "http://127.0.0.1:9999"
S7 = "http://127.0.0.1:7777"


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def stat_of(p: str):
    st = os.stat(p)
    return (st.st_ino, st.st_nlink, st.st_mode, st.st_uid, st.st_gid, st.st_size)


class Edits(InstallCase):
    def test_two_main_files_in_one_directory(self):
        self.prepare("nginx-org", "two")
        w = self.w
        canary = f"{w}/conf/nginx-canary.conf"
        for p in (canary, f"{w}/orig/nginx-canary.conf"):
            write(p, read(self.conf))
        flags = ["--conf", canary, "--modules-dir", f"{w}/mods", "--backup-dir", f"{w}/backups", "--prefix", f"{w}/prefix"]
        self.install("--ase-server", S1, "--enable-location", "/")
        r = self.install_raw(*flags, "--ase-server", S7, "--enable-location", "/")
        self.check("two main files: install into the second succeeds", r.rc == 0)
        self.check("two main files: the first install is still in place",
                   re.search(rb"^ase_server http://127.0.0.1:9999;", read(f"{w}/conf/ase.conf") or b"", re.M) is not None)
        self.check("two main files: the second has its own ase file",
                   re.search(rb"^ase_server http://127.0.0.1:7777;", read(f"{w}/conf/ase.nginx-canary.conf") or b"",
                             re.M) is not None)
        self.check("two main files: one state file each", len(self.state_files()) == 2)
        self.check("two main files: nginx -t on the first", self.nginx_t())
        self.check("two main files: nginx -t on the second",
                   self.nginx("-t", "-c", canary, "-p", f"{w}/prefix/", "-e", "stderr").returncode == 0)
        r = self.install_raw(*flags, "--uninstall")
        self.check("two main files: uninstalling the second keeps the modules the first needs",
                   r.rc == 0 and self.mods() == MODULE_FILES)
        self.check("two main files: the second is back to its original", cmp(f"{w}/orig/nginx-canary.conf", canary))
        self.check("two main files: nginx -t on the first after that", self.nginx_t())
        self.install("--uninstall")
        self.check("two main files: both uninstalled, everything as before", self.no_change())

    def test_duplicate_blocks_plus_an_edit(self):
        self.prepare("nginx-org", "dup")
        w = self.w
        conf = (b"pid nginx.pid;\nevents {}\nhttp {\n    server {\n        listen 127.0.0.1:8081;\n        location / {\n"
                b"        }\n    }\n    server {\n        listen 127.0.0.1:8082;\n        location / {\n        }\n    }\n}\n")
        write(self.conf, conf)
        write(f"{w}/orig/nginx.conf", conf)
        r = self.install("--ase-server", S1, "--enable-location", "/")
        self.check("duplicates: install", r.rc == 0)
        for p in (self.conf, f"{w}/orig/nginx.conf"):
            write(p, re.sub(rb"(?m)^    server \{", lambda m: b"    # the operator was here\n" + m.group(0), read(p)))
        r = self.install("--ase-server", S1, "--enable-location", "/")
        self.check("duplicates plus an edit: re-install succeeds", r.rc == 0)
        self.check("duplicates plus an edit: nginx -t", self.nginx_t())
        r = self.install("--uninstall")
        self.check("duplicates plus an edit: uninstall succeeds", r.rc == 0)
        self.check("duplicates plus an edit: only ngx-ase's lines taken out", self.no_change())
        self.install("--ase-server", S1, "--enable-location", "/")
        # The operator takes one inserted block out by hand: the uninstall takes out the rest.
        s = read(self.conf).decode()
        s = re.sub(r" *# ngx-ase: managed begin \(location / #\d+\)\n.*?# ngx-ase: managed end \(location / #\d+\)\n",
                   "", s, count=1, flags=re.S)
        write(self.conf, s.encode())
        r = self.install("--uninstall")
        self.check("a block taken out by hand: uninstall succeeds, saying so", r.succeeded("already taken out by hand"))
        self.check("a block taken out by hand: original restored", self.no_change())

    def test_syntax_error_added_after_the_install(self):
        self.prepare("nginx-org", "syntax")
        self.install("--ase-server", S1, "--enable-location", "/")
        with open(self.conf, "ab") as f:
            f.write(b"}\n")
        want = read(self.conf).count(b"\n")
        r = self.install("--ase-server", S1, "--enable-location", "/")
        self.check(f"syntax error: refused, quoting the line of the file as it is ({want})",
                   r.refused(re.escape(f'unexpected "}}" in {self.conf}:{want}') + "$"))

    def test_orphans(self):
        self.prepare("nginx-org", "orphans")
        self.install("--ase-server", S1, "--enable-location", "/")
        s = read(self.conf).decode()
        write(self.conf, re.sub(r" *# ngx-ase: managed begin \(.*?# ngx-ase: managed end \([^)]*\)\n", "", s,
                                flags=re.S).encode())
        for n in self.state_files():
            os.unlink(f"{self.w}/conf/{n}")
        r = self.install("--ase-server", S1, "--enable-location", "/")
        if self.check("orphaned ase.conf and modules: the next install takes them over",
                      r.succeeded("ase.conf was left by an earlier install")):
            self.check("orphaned modules taken over", r.has("module.so was left"))
        self.check("orphaned files: nginx -t", self.nginx_t())
        self.install("--uninstall")
        self.check("orphaned files: uninstall removes them too", self.no_change())

    def test_operator_edits_to_ase_conf(self):
        self.prepare("nginx-org", "asecf")
        ase = f"{self.w}/conf/ase.conf"
        self.install("--ase-server", S1)
        with open(ase, "ab") as f:
            f.write(b"ase_keepalive 8;\n")
        r = self.install("--ase-server", S7)
        self.check("ase.conf edited below the managed lines: re-install succeeds, keeping them",
                   r.succeeded("keeping the lines you added"))
        self.check("ase.conf edited: the new server is in",
                   re.search(rb"^ase_server http://127.0.0.1:7777;", read(ase), re.M) is not None)
        self.check("ase.conf edited: the operator's line is still there",
                   re.search(rb"^ase_keepalive 8;", read(ase), re.M) is not None)
        self.check("ase.conf edited: nginx -t", self.nginx_t())
        r = self.install("--ase-server", S7)
        self.check("ase.conf edited: same flags again change nothing", r.succeeded("nothing changed"))
        write(ase, re.sub(rb"(?m)^ase_server http://127.0.0.1:7777;", b"ase_server http://127.0.0.1:1;", read(ase)))
        edited = read(ase)
        r = self.install("--ase-server", "http://127.0.0.1:5555")
        if self.check("ase.conf managed lines edited: refused with the diff", r.refused("edited by hand")):
            self.check("ase.conf managed lines edited: the diff shows the change",
                       r.has(r"^-ase_server http://127.0.0.1:7777;") and r.has(r"^\+ase_server http://127.0.0.1:1;"))
        self.check("ase.conf managed lines edited: the file is left as it is", read(ase) == edited)
        r = self.install("--uninstall")
        self.check("ase.conf edited: uninstall says its copy is in the backup", r.succeeded("lines you added"))
        self.check("ase.conf edited: uninstall gives back the original", self.no_change())

    def set_xattr(self, path: str) -> str:
        """user.* where the file system takes it, else trusted.* (root; tmpfs before Linux 6.6
        has no user.* attributes)."""
        try:
            os.setxattr(path, "user.ngx-ase-test", b"label")
            return "user.ngx-ase-test"
        except OSError:
            os.setxattr(path, "trusted.ngx-ase-test", b"label")
            return "trusted.ngx-ase-test"

    def xattr_of(self, path: str, name: str):
        try:
            return os.getxattr(path, name)
        except OSError:
            return None

    def test_hard_links_and_extended_attributes(self):
        self.prepare("debian", "links")
        w = self.w
        default = f"{w}/conf/sites-available/default"
        os.link(default, f"{w}/default.link")
        xa = self.set_xattr(self.conf)
        before_default, before_conf = stat_of(default), stat_of(self.conf)
        r = self.install("--ase-server", S1, "--enable-location", "/", "--enable-all")
        self.check("hard link: install", r.rc == 0)
        self.check("hard link: the changed file is still the linked inode", cmp(f"{w}/default.link", default))
        self.check("hard link: link count still 2", os.stat(default).st_nlink == 2)
        self.install("--uninstall")
        self.check("hard link: uninstall restores the same inode, stat-identical", stat_of(default) == before_default)
        self.check("hard link: original bytes", self.no_change())
        self.check("xattr: the main file keeps its inode and its attribute",
                   stat_of(self.conf) == before_conf and self.xattr_of(self.conf, xa) == b"label")
        self.prepare("nginx-org", "xattr")
        xa = self.set_xattr(self.conf)
        before_conf = stat_of(self.conf)
        r = self.install("--ase-server", S1, "--enable-location", "/")
        self.check("xattr: a changed file keeps its attribute", r.rc == 0 and self.xattr_of(self.conf, xa) == b"label")
        self.install("--uninstall")
        self.check("xattr: uninstall gives back the bytes, inode and attribute",
                   stat_of(self.conf) == before_conf and self.xattr_of(self.conf, xa) == b"label")
        self.check("xattr: original restored", self.no_change())

    def test_a_directory_the_install_created(self):
        self.prepare("nginx-org", "newdir")
        w = self.w
        self.install("--ase-server", S1, "--modules-dir", f"{w}/newdir/modules")
        self.check("created modules directory: install", os.path.isdir(f"{w}/newdir/modules"))
        self.install("--uninstall")
        self.check("created modules directory: removed by the uninstall", not os.path.exists(f"{w}/newdir"))
        r = self.install("--ase-server", "ftp://bad.example", "--modules-dir", f"{w}/newdir/modules")
        self.check("created modules directory: removed by a rollback", r.rc != 0 and not os.path.exists(f"{w}/newdir"))

    def test_a_bracket_in_the_path(self):
        self.prepare("nginx-org", "br[ack]et")
        r = self.install("--ase-server", S1, "--enable-all")
        self.check("[ in the path: install", r.rc == 0)
        self.check("[ in the path: nginx reads ase.conf (ase_request on in nginx -T)",
                   self.nginx_dump().count("ase_request on;") == 1)
        r = self.install("--ase-server", S1, "--enable-all")
        self.check("[ in the path: second install changes nothing", r.has("nothing changed"))
        self.install("--uninstall")
        self.check("[ in the path: uninstall gives back the original", self.no_change())

    def test_messages(self):
        self.prepare("nginx-org", "msg")
        w = self.w
        if subprocess.run(["chattr", "+i", self.conf], stderr=subprocess.DEVNULL).returncode == 0:
            try:
                r = self.install("--ase-server", S1, "--enable-location", "/")
            finally:
                subprocess.run(["chattr", "-i", self.conf])
            self.check("immutable file: refused with one clear line", r.refused(f"cannot write {re.escape(self.conf)}: "
                                                                               "Operation not permitted"))
            self.check("immutable file: no 'could not restore' for a file never changed",
                       "could not restore" not in r.out.lower())
            self.check("immutable file: nothing changed", self.no_change())
        else:
            print(f"skip  immutable file: chattr +i is not supported under {self.tmp}")
        write(f"{w}/not-a-dir", b"x\n")
        r = self.install_raw("--conf", self.conf, "--modules-dir", f"{w}/mods", "--prefix", f"{w}/prefix", "--backup-dir",
                             f"{w}/not-a-dir/b", "--ase-server", S1)
        self.check("unwritable backup directory: refused with one clear line",
                   r.refused(re.escape(f"cannot write the backups to {w}/not-a-dir/b")))
        self.check("unwritable backup directory: no traceback", "traceback" not in r.out.lower())
        self.check("unwritable backup directory: nothing changed", self.no_change())
        for p in (self.conf, f"{w}/orig/nginx.conf"):
            write(p, re.sub(rb"(?m)^    sendfile        on;",
                            lambda m: m.group(0) + b"\n    map $uri $ase_verdict { default x; }", read(p)))
        want = next(i for i, l in enumerate(read(self.conf).split(b"\n"), 1) if b"ase_verdict" in l)
        r = self.install("--ase-server", S1, "--enable-location", "/")
        if self.check("nginx -t failing after the patch: refused, nothing changed", r.rc != 0):
            self.check("nginx -t failing: nothing changed", self.no_change())
        self.check(f"nginx -t failing: the line quoted is the operator's line {want}",
                   r.has(f"ase_verdict.* in {re.escape(self.conf)}:{want}$"))

    def test_help_documents_every_flag(self):
        help_text = subprocess.run([INSTALL, "--help"], stdout=subprocess.PIPE).stdout.decode()
        flags = [o for a in cli.parser()._actions for o in a.option_strings]
        self.check("--help: the parser has its flags (at least 20)", len(flags) >= 20, " ".join(flags))
        undocumented = [f for f in flags if f not in help_text]
        self.check("--help documents every flag", not undocumented, f"not in --help: {' '.join(undocumented)}")


if __name__ == "__main__":
    unittest.main()
