"""scripts/install.sh interrupted: killed (SIGKILL) right after each of its file changes, then
run again; another command after an interrupted install; SIGINT, SIGTERM and SIGHUP.

The kill sweep uses a test-only hook of the tool: NGX_ASE_INSTALL_TEST_KILL_AFTER=N makes it
send itself SIGKILL right after its Nth file change (scripts/install/fileops.py)."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import INSTALL, InstallCase, Run, cmp, empty_dir, same  # noqa: E402

S1 = "http://127.0.0.1:9999"


class Interrupts(InstallCase):
    def kill_run(self, n: int, *args: str):
        env = dict(os.environ, NGX_ASE_INSTALL_TEST_KILL_AFTER=str(n))
        return self.install(*args, env=env)

    def kill_sweep(self, name: str, layout: str, *flags: str, hook=None, kill_t: bool = True) -> None:
        """For N = 1, 2, ...: on a fresh copy of LAYOUT, the install is killed right after its
        Nth file change; nginx -t must still pass (KILL_T: unless an in-place rewrite is half
        done), running the same install again must succeed, and an uninstall must give back the
        original bytes. Then the same for an uninstall killed after its Nth change, and for a
        second install with other settings and another modules directory ("change"). Stops at
        the first N the run outlives."""
        change = ["--timeout", "2s", "--enable-all", "--modules-dir", f"{self.tmp}/kill-{name}/mods2"]
        for phase in ("install", "uninstall", "change"):
            n, problems, points = 1, [], 0
            while n < 200:
                self.prepare(layout, f"kill-{name}", hook=hook)
                w = self.w
                if phase == "install":
                    r = self.kill_run(n, *flags)
                else:
                    r = self.install(*flags)
                    if r.rc != 0:
                        problems.append(f"[install before the kill failed: {r.out}]")
                        break
                    r = self.kill_run(n, *flags, "--uninstall") if phase == "uninstall" else self.kill_run(n, *flags, *change)
                if r.rc != -signal.SIGKILL and r.rc != 128 + signal.SIGKILL:
                    if r.rc != 0:
                        problems.append(f"[N={n}: not killed, rc {r.rc}: {r.out}]")
                    break
                points += 1
                if kill_t and not self.nginx_t():
                    problems.append(f"[N={n}: nginx -t fails after the kill: {self.nginx_t_out()[-300:]}]")
                if phase == "install":
                    r = self.install(*flags)
                elif phase == "uninstall":
                    r = self.install(*flags, "--uninstall")
                else:
                    r = self.install(*flags, *change)
                if r.rc != 0:
                    problems.append(f"[N={n}: running the same {phase} again failed: {r.out}]")
                if not self.nginx_t():
                    problems.append(f"[N={n}: nginx -t fails after the re-run]")
                if phase == "change" and "ase_timeout 2s;" not in self.nginx_dump():
                    problems.append(f"[N={n}: the changed settings are not in place after the re-run]")
                if phase != "uninstall":
                    r = self.install("--uninstall")
                if r.rc != 0:
                    problems.append(f"[N={n}: the final uninstall failed: {r.out}]")
                if not same(f"{w}/orig", f"{w}/conf"):
                    problems.append(f"[N={n}: not byte-identical after the final uninstall]")
                if not empty_dir(f"{w}/mods"):
                    problems.append(f"[N={n}: modules left]")
                if os.path.exists(f"{w}/newdir") or os.path.exists(f"{w}/mods2"):
                    problems.append(f"[N={n}: a created modules directory was left]")
                if glob.glob(f"{w}/conf/.*ngx-ase-tmp"):
                    problems.append(f"[N={n}: a *.ngx-ase-tmp file was left]")
                if os.path.exists(f"{w}/nginx.conf.link"):
                    if not (os.stat(self.conf).st_nlink == 2 and cmp(self.conf, f"{w}/nginx.conf.link")):
                        problems.append(f"[N={n}: the hard link of nginx.conf was broken]")
                n += 1
            self.check(f"{name}: {phase} killed at each of its {points} file changes: re-run succeeds, nginx -t, "
                       "original restored", not problems and points > 5, " ".join(problems))

    def test_kill_sweep_debian(self):
        self.kill_sweep("debian", "debian", "--ase-server", S1, "--token-file", self.token, "--enable-location", "/")

    def test_kill_sweep_nginx_org(self):
        self.kill_sweep("nginx-org", "nginx-org", "--ase-server", S1, "--enable-location", "/", "--enable-location",
                        "/50x.html", "--modules-dir", f"{self.tmp}/kill-nginx-org/newdir/modules")

    def test_kill_sweep_hard_link(self):
        def links():
            os.link(self.conf, f"{self.w}/nginx.conf.link")
        self.kill_sweep("hard-link", "nginx-org", "--ase-server", S1, "--enable-location", "/", hook=links, kill_t=False)

    def test_another_command_after_an_interrupted_install(self):
        self.prepare("nginx-org", "other-cmd")
        w = self.w
        r = self.kill_run(8, "--ase-server", S1, "--enable-location", "/")
        self.check("interrupted install: killed", r.rc in (-signal.SIGKILL, 128 + signal.SIGKILL))
        subprocess.run(["rm", "-rf", f"{w}/killed"], check=True)
        subprocess.run(["cp", "-a", f"{w}/conf", f"{w}/killed"], check=True)
        r = self.install("--ase-server", S1, "--enable-location", "/", "--dry-run")
        self.check("interrupted install: --dry-run refuses, saying what to do",
                   r.refused("interrupted before it finished: run the command without --dry-run"))
        self.check("interrupted install: --dry-run changed nothing", same(f"{w}/killed", f"{w}/conf"))
        r = self.install("--uninstall")
        self.check("interrupted install: --uninstall undoes it, saying so", r.succeeded("last install was interrupted"))
        self.check("interrupted install: --uninstall gives back the original", self.no_change())
        self.check("interrupted install: stat-identical", self.same_stat())

    def test_signals_put_every_file_back(self):
        flag = os.path.join(self.tmp, "slow-flag")
        # nginx -t on the patched configuration waits, so that the test can signal the install then.
        slow = self.write_fake("nginx-slow", f"""
if [ "$1" = -t ] && grep -q "ngx-ase: managed" "$3" 2>/dev/null; then touch "{flag}"; exec sleep 60; fi
exec "$NGINX" "$@"
""")
        for sig in ("INT", "TERM", "HUP"):
            self.prepare("nginx-org", f"sig{sig}")
            if os.path.exists(flag):
                os.unlink(flag)
            with open(f"{self.w}/out", "wb") as out:
                p = subprocess.Popen([INSTALL] + self.base + ["--nginx", slow, "--ase-server", S1, "--enable-location",
                                                              "/"], stdout=out, stderr=subprocess.STDOUT)
                for _ in range(600):
                    if os.path.exists(flag):
                        break
                    time.sleep(0.1)
                p.send_signal(getattr(signal, f"SIG{sig}"))
                rc = p.wait()
            with open(f"{self.w}/out", encoding="utf-8", errors="replace") as f:
                text = f.read()
            self.last = Run(rc, text)
            self.check(f"SIG{sig} during the install: it stops, saying so", self.last.refused(f"interrupted by SIG{sig}"))
            self.check(f"SIG{sig} during the install: every file put back, no module left", self.no_change())
            self.check(f"SIG{sig} during the install: no state file left", not self.state_files())


if __name__ == "__main__":
    unittest.main()
