"""scripts/install.sh's one parser: reads the operator's flags (usage.txt is --help), finds the
nginx and reads `nginx -V`, checks what can be checked before anything changes (flags, token
file, --with-compat, that the built modules load: nginx_bin.py), builds them when asked
(scripts/build.sh), then hands the run to main.py. install.sh only checks that python3 exists."""

from __future__ import annotations

import argparse
import os
import re
import stat
import subprocess
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import main  # noqa: E402
import nginx_bin  # noqa: E402
from ui import Fail, say, warn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

VALUE_FLAGS = ["--nginx", "--conf", "--modules-dir", "--prefix", "--modules-from", "--nginx-src",
               "--max-fails", "--fail-timeout", "--token-file", "--fail-mode", "--connect-timeout", "--timeout",
               "--backup-dir"]
REPEATED_FLAGS = ["--ase-server", "--ase-backup", "--enable-location"]
SWITCHES = ["--build", "--enable-all", "--dry-run", "--uninstall", "--allow-outside-conf-dir"]


class _Parser(argparse.ArgumentParser):
    """argparse with the installer's own words for a mistake, and exit status 1."""

    def error(self, message: str):
        m = re.match(r"argument (--[a-z-]+): expected one argument", message)
        if m:
            raise Fail(f"{m.group(1)} needs a value (see --help)")
        raise Fail(f"{message} (see --help)")


def _value(flag: str):
    def check(v: str) -> str:
        if not v:
            raise Fail(f"{flag} needs a value (see --help)")
        return v
    return check


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="scripts/install.sh", add_help=False, allow_abbrev=False)
    for f in VALUE_FLAGS:
        p.add_argument(f, type=_value(f))
    for f in REPEATED_FLAGS:
        p.add_argument(f, type=_value(f), action="append", default=[])
    for f in SWITCHES:
        p.add_argument(f, action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    return p


def parse(argv: List[str]) -> argparse.Namespace:
    a, unknown = parser().parse_known_args(argv)
    if unknown:
        raise Fail(f"unknown argument: {unknown[0]} (see --help)")
    a.flags_text = " ".join(argv)
    a.conf_given = a.conf is not None
    return a


def usage() -> str:
    with open(os.path.join(HERE, "usage.txt")) as f:
        return f.read()


# --- checks that change nothing ----------------------------------------------------------------

def check_flags(a) -> None:
    if not a.ase_server and not a.ase_backup:
        raise Fail("give at least one --ase-server URL (see --help)")
    if a.fail_mode not in (None, "open", "closed"):
        raise Fail(f"--fail-mode takes open or closed, not '{a.fail_mode}'")
    if a.max_fails is not None and not re.fullmatch(r"[0-9]+", a.max_fails):
        raise Fail(f"--max-fails takes a number, not '{a.max_fails}'")
    for t in (a.fail_timeout, a.connect_timeout, a.timeout):
        if t is not None and not re.fullmatch(r"[0-9]+[0-9a-zA-Z]*", t):
            raise Fail(f"'{t}' is not an nginx time (like 100ms, 1s)")
    if a.token_file is not None:
        t = a.token_file
        if not os.path.exists(t):
            raise Fail(f"--token-file {t}: no such file")
        if not os.path.isfile(t):
            raise Fail(f"--token-file {t} is not a regular file")
        mode = stat.S_IMODE(os.stat(t).st_mode)
        if mode & stat.S_IROTH:
            raise Fail(f"--token-file {t} is world readable (mode {mode:o}): chmod o-r it first, the token is a secret")
        a.token_file = os.path.abspath(t)
    if a.nginx_src and not a.build:
        raise Fail("--nginx-src goes with --build")
    if a.build and a.modules_from:
        raise Fail("--build and --modules-from do not go together")


def build(a, ngx: nginx_bin.Nginx) -> None:
    """scripts/build.sh for this nginx: Debian's sources (nginx-dev), or --nginx-src."""
    if a.dry_run:
        warn("--dry-run: not building; checking the modules already in build/system/modules")
        return
    say(f"building the modules for {ngx.path} (nginx {ngx.version})")
    script = os.path.join(ROOT, "scripts", "build.sh")
    env = dict(os.environ)
    if a.nginx_src:
        cmd = [script, "--nginx-src", a.nginx_src, "--nginx", ngx.path, "--name", "system"]
    else:
        cmd = [script, "--nginx", "system"]
        env["PATH"] = os.path.dirname(ngx.path) + os.pathsep + env.get("PATH", "")
    rc = subprocess.call(cmd, env=env)
    if rc != 0:
        raise Fail(f"scripts/build.sh failed (exit status {rc}): nothing was changed")


def default_backup_dir() -> str:
    if os.geteuid() == 0:
        return "/var/backups/ngx-ase"
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "ngx-ase", "backups")


def prepare(a) -> None:
    """Fills in what the flags left to nginx -V and checks everything before the run."""
    ngx = nginx_bin.find(a.nginx)
    a.nginx = ngx.path
    a.conf = a.conf or ngx.conf_path
    a.modules_dir = a.modules_dir or ngx.modules_path
    if not os.path.isfile(a.conf):
        raise Fail(f"{a.conf}: no such configuration file (give one with --conf PATH)")
    a.error_log_flag = ngx.has_error_log_flag()
    a.backup_dir = a.backup_dir or default_backup_dir()
    if a.uninstall:
        a.command, a.modules_from = "uninstall", "/nonexistent"
        say(f"uninstalling ngx-ase from {a.conf} (nginx {ngx.version}, {ngx.path})")
        return
    a.command = "install"
    if not ngx.with_compat():
        raise Fail(f"{ngx.path} (nginx {ngx.version}) was not configured --with-compat, so no dynamic module built "
                   "outside its own source tree can load into it: nothing was changed")
    check_flags(a)
    if a.build:
        build(a, ngx)
    from_dir = a.modules_from or os.path.join(ROOT, "build", "system", "modules")
    if not os.path.isdir(from_dir):
        raise Fail(f"{from_dir}: no such directory (build the modules first, or add --build)")
    a.modules_from = os.path.abspath(from_dir)
    ngx.check_modules(a.modules_from)
    say(f"installing ngx-ase into {a.conf} (nginx {ngx.version}, {ngx.path}; modules to {a.modules_dir})")


def main_cli(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        a = parse(argv)
        if a.help:
            sys.stdout.write(usage())
            return 0
        prepare(a)
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return main.main(a)


if __name__ == "__main__":
    sys.exit(main_cli())
