"""The config-editing half of scripts/install.sh: cli.py parses the flags, finds nginx and
checks the modules first, then calls main(a); see install.sh --help.

Every change is one journaled transaction (txn.py): backups, then the journal in the state
file, then the files in a crash-safe order (steps.py), then `nginx -t`; if that fails, or
the run is interrupted, every file is put back. A run that finds the journal of a run that
was killed undoes that first (journal.py). The state file (.ngx-ase-state.<main>.json, next
to the main configuration file) records what was created and what was inserted where, so
that a second install changes nothing and --uninstall gives back the original bytes, without
having to parse the configuration."""

from __future__ import annotations

import difflib
import fcntl
import os
import subprocess
import sys
import time
from typing import List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fileops  # noqa: E402
import linemap  # noqa: E402
from changes import base_view, parse_config, plan_install_steps, plan_uninstall_steps, unlisted_markers  # noqa: E402
from journal import JournalError, StateFile, rollback_pending  # noqa: E402
from nginx_conf import Config  # noqa: E402
from txn import Interrupted, TxnError, execute, handle_signals, hold_signals, release_signals  # noqa: E402
from ui import Fail, say, warn  # noqa: E402

read = fileops.read


# --- nginx -t ----------------------------------------------------------------------------------

def nginx_test_cmd(a) -> List[str]:
    cmd = [a.nginx, "-t", "-c", a.conf]
    if a.prefix:
        cmd += ["-p", a.prefix.rstrip("/") + "/"]
    if a.error_log_flag:
        cmd += ["-e", "stderr"]
    return cmd


def nginx_test(a) -> Tuple[bool, str]:
    p = subprocess.run(nginx_test_cmd(a), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return p.returncode == 0, p.stdout.decode("utf-8", "replace").rstrip()


# --- diff for --dry-run ------------------------------------------------------------------------

def show_diff(path: str, old: Optional[bytes], new: Optional[bytes]) -> None:
    dec = lambda b: b.decode("utf-8", "surrogateescape").splitlines(keepends=True)  # noqa: E731
    a = dec(old) if old is not None else []
    b = dec(new) if new is not None else []
    lines = difflib.unified_diff(a, b, fromfile=path if old is not None else "/dev/null",
                                 tofile=path if new is not None else "/dev/null")
    for l in lines:
        sys.stdout.write(l.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        if not l.endswith("\n"):
            sys.stdout.write("\n\\ No newline at end of file\n")


def check_includes(a, plan) -> None:
    """Every file the install created is read by nginx: an include of it matches it (a "[" in
    a path makes nginx read an include as a pattern)."""
    cfg = Config(a.conf)
    included = {os.path.realpath(p) for d, _ in cfg.walk() for p, _ in d.included}
    for path in plan.creates:
        if os.path.basename(os.path.dirname(path)) == "modules-enabled" or path.endswith(".conf"):
            if os.path.realpath(path) not in included:
                raise TxnError(f"nginx would not read {path}: no include of the configuration matches it "
                               "(a glob character in a directory name?); every file was put back")


# --- the run -----------------------------------------------------------------------------------

def outside_conf_dir(a, steps) -> None:
    """With --conf (often a copy of a configuration), a file the install would create or change
    outside the main file's directory is refused unless asked for: a copy whose includes name
    absolute paths (include /etc/nginx/conf.d/*.conf;) would otherwise patch the real files.
    Modules go where --modules-dir says, so they are not asked about."""
    if not getattr(a, "conf_given", False) or getattr(a, "allow_outside_conf_dir", False):
        return
    top = os.path.realpath(os.path.dirname(a.conf))
    for s in steps:
        rp = os.path.realpath(s.path)
        if not s.module and os.path.commonpath([top, rp]) != top:
            raise Fail(f"{s.path} is outside {top}, the directory of --conf {a.conf} (an include with an absolute "
                       "path?): nothing was changed; add --allow-outside-conf-dir to change it all the same")


def lock(conf_dir: str) -> int:
    """One install at a time per configuration directory (a lock on it: no file is created)."""
    fd = os.open(conf_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise Fail(f"another scripts/install.sh is working on {conf_dir}; try again when it is done") from None
    return fd


def recover(a, sf: StateFile, doc: dict) -> Optional[dict]:
    """Undoes the change of a run that was killed; returns the state from before it."""
    p = doc["pending"]
    if not p:
        return doc["state"]
    if a.dry_run:
        raise Fail(f"the last {p['command']} was interrupted before it finished: run the command without "
                   "--dry-run first (it undoes that, then does what it is asked)")
    warn(f"the last {p['command']} was interrupted before it finished: undoing it first "
         f"(backups in {p['backup_root']})")
    hold_signals()  # an undo half done is finished by the next run, but better not stopped at all
    try:
        restored = rollback_pending(p)
        sf.save(p["state_before"])
    except (JournalError, OSError) as e:
        raise Fail(str(e)) from None
    finally:
        release_signals()
    for path in restored:
        say(f"put back {path}")
    return p["state_before"]


def backup_root_for(a) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = os.path.join(os.path.abspath(a.backup_dir), f"{stamp}-{a.command}")
    n = 1
    while os.path.exists(root):
        n += 1
        root = os.path.join(os.path.abspath(a.backup_dir), f"{stamp}-{a.command}.{n}")
    return root


def run(a) -> int:
    conf = os.path.abspath(a.conf)
    a.conf = conf
    if not os.path.isfile(conf):
        raise Fail(f"{conf}: no such configuration file")
    handle_signals()
    sf = StateFile(conf)
    lock(sf.conf_dir)
    stale = fileops.tmp_name(sf.path)  # a state file write cut short (no journal was written)
    if os.path.lexists(stale) and not a.dry_run:
        os.unlink(stale)
    try:
        doc = sf.load()
        state = recover(a, sf, doc)
        others = sf.others()
    except JournalError as e:
        raise Fail(str(e)) from None

    plan, replaced_loaded = None, False
    if a.command == "install":
        overlay, current = base_view(state, others)
        cfg = parse_config(conf, overlay, current)
        listed = {os.path.realpath(m["path"]) for st in ([state] if state else []) + others for m in st["modified"]}
        marks = unlisted_markers(cfg, listed)
        if marks:
            raise Fail(f"{marks[0][0]}:{marks[0][1]} has ngx-ase managed lines but {sf.path} does not list them "
                       "(deleted?): take them out by hand or restore a backup, then run the install again")
        steps, new_state, plan, replaced_loaded = plan_install_steps(a, cfg, overlay, state, others)
        outside_conf_dir(a, steps)
        if not steps:
            say(f"already installed as asked in {conf}: nothing changed")
            return 0
    else:
        if not state:
            say(f"ngx-ase is not installed in {conf} (no {sf.path}): nothing to do")
            return 0
        steps, new_state = plan_uninstall_steps(state, others), None

    if a.dry_run:
        say("dry run: these are the changes, in the order they would be made; nothing was written")
        shown = set()
        for s in steps:
            if s.module:
                print(f"module: {'remove' if s.after is None else 'write'} {s.path}")
            elif s.path not in shown:
                shown.add(s.path)
                last = [x for x in steps if x.path == s.path][-1]
                show_diff(s.path, s.before, last.after)
        print(f"state: {'write' if new_state else 'remove'} {sf.path}")
        return 0

    if a.command == "install":
        ok, out = nginx_test(a)
        if not ok:
            raise Fail("nginx -t fails on the configuration as it is now, before any change; fix that first:\n" + out)

    first_before = {}
    for s in steps:
        first_before.setdefault(s.path, s.before)

    def verify() -> None:
        if plan is not None:
            check_includes(a, plan)
        ok, out = nginx_test(a)
        if not ok:
            files = {p: (b, read(p)) for p, b in first_before.items()}
            raise TxnError("nginx -t failed on the result, so every file was put back as it was. nginx said "
                           "(lines as in your files):\n" + linemap.rewrite(out, files))

    backup_root = backup_root_for(a)
    try:
        dirs = execute(sf, a.command, state, new_state, steps, backup_root, verify)
    except TxnError as e:
        raise Fail(str(e)) from None
    except Interrupted as e:
        raise Fail(f"interrupted by {e}: every file was put back as it was") from None
    except KeyboardInterrupt:
        raise Fail("interrupted: every file was put back as it was") from None

    last_after = {}
    for s in steps:
        last_after[s.path] = s.after
    for path, before in first_before.items():
        after = last_after[path]
        if any(x.module for x in steps if x.path == path):
            verb = "installed" if before is None else ("removed" if after is None else "replaced (new inode)")
        else:
            verb = "created" if before is None else ("removed" if after is None else "changed")
        say(f"{verb} {path}")
    for d in dirs:
        say(f"created the directory {d}")
    if any(b is not None for b in first_before.values()):
        say(f"backups of the files it changed: {backup_root}")
    say("nginx -t: the configuration test is successful")
    if a.command == "install":
        if replaced_loaded:
            say("RESTART nginx now (e.g. systemctl restart nginx), do NOT reload: it replaced module "
                "files that a running nginx has loaded, and a reload would mix the old and new modules")
        elif any(s.module and s.after is not None for s in steps):
            say("restart nginx (e.g. systemctl restart nginx) to load the modules")
        else:
            say("reload nginx (e.g. nginx -s reload) to apply the configuration change")
    else:
        say("restart nginx (e.g. systemctl restart nginx), not reload, so no process keeps the old modules")
    return 0


def main(a) -> int:
    """Runs the command cli.py prepared from the operator's flags; 1 after a refusal."""
    try:
        return run(a)
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"error: interrupted by {e} before any file was changed", file=sys.stderr)
        return 1

