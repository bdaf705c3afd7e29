"""The config-editing half of scripts/install.sh (which finds nginx and checks the modules
first, then runs this). Usage: main.py install|uninstall [options]; see install.sh --help.

Every change is one journaled transaction (txn.py): backups, then the journal in the state
file, then the files in a crash-safe order (steps.py), then `nginx -t`; if that fails, or
the run is interrupted, every file is put back. A run that finds the journal of a run that
was killed undoes that first (journal.py). The state file (.ngx-ase-state.<main>.json, next
to the main configuration file) records what was created and what was inserted where, so
that a second install changes nothing and --uninstall gives back the original bytes, without
having to parse the configuration."""

from __future__ import annotations

import argparse
import difflib
import fcntl
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ase_conf  # noqa: E402
import fileops  # noqa: E402
import linemap  # noqa: E402
from journal import JournalError, StateFile, owned_paths, rollback_pending, sha256  # noqa: E402
from nginx_conf import FS, Config, ConfError  # noqa: E402
from patch import (MARK, MODULE_FILES, STAGE_MODULES, STAGE_SETTINGS, Options, PlanError,  # noqa: E402
                   StripError, plan_install, strip_edits)
from steps import OLD_EDITS, OLD_FILES, OLD_MODULES, UNINSTALL_KEY, order, staged_file, unstaged_file  # noqa: E402
from txn import Interrupted, TxnError, execute, handle_signals  # noqa: E402

BOLD, RESET = ("\033[1m", "\033[0m")
MANAGED_FILE = f"# {MARK} file".encode()


def say(msg: str) -> None:
    print(f"{BOLD}==> {msg}{RESET}", file=sys.stderr)


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


class Fail(Exception):
    pass


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


# --- the configuration as it was before the install -------------------------------------------

def strip_or_fail(path: str, cur: bytes, edits) -> Tuple[bytes, List[str]]:
    try:
        return strip_edits(cur, edits)
    except StripError as e:
        raise Fail(f"{path}:{e.line}: {e.msg}: take out the lines from '# {MARK} begin (...)' to its "
                   "'end' marker there by hand (or restore a backup), then run the same command again") from None


def base_view(state: Optional[dict], others: List[dict]) -> Tuple[Dict[str, Optional[bytes]], Dict[str, bytes]]:
    """The overlay that takes our insertions out and hides the files ngx-ase created (ours and
    those of another main file's install), and the current content of each stripped file."""
    overlay: Dict[str, Optional[bytes]] = {}
    current: Dict[str, bytes] = {}
    for st in others:
        for c in st["created"]:
            overlay[os.path.realpath(c["path"])] = None
    if not state:
        return overlay, current
    for m in state["modified"]:
        cur = read(m["path"])
        if cur is None:
            raise Fail(f"{m['path']} (changed by the install) is gone; restore it from a backup")
        base, notes = strip_or_fail(m["path"], cur, m["insertions"])
        for n in notes:
            warn(f"{m['path']}: the lines '{n}' were already taken out by hand")
        if sha256(base) != m["original_sha256"]:
            warn(f"{m['path']} was edited since the install; only ngx-ase's lines are taken out")
        overlay[os.path.realpath(m["path"])] = base
        current[os.path.realpath(m["path"])] = cur
    for c in state["created"]:
        overlay[os.path.realpath(c["path"])] = None
    return overlay, current


def parse_config(conf: str, overlay, current) -> Config:
    try:
        return Config(conf, FS(overlay))
    except ConfError as e:
        # Our parser read the stripped files: quote the lines of the files as they are.
        files = {p: (cur, overlay[p]) for p, cur in current.items()}
        raise Fail("cannot parse the configuration: " + linemap.rewrite(str(e), files)) from None


def unlisted_markers(cfg: Config, listed: set) -> List[Tuple[str, int]]:
    """Managed lines in files no state file lists as modified (a state file deleted by hand)."""
    out = []
    for path, pf in cfg.files.items():
        if os.path.realpath(path) in listed or pf.data.startswith(MANAGED_FILE):
            continue
        for c in pf.comments:
            if c.value.strip().startswith(MARK.encode()):
                out.append((path, c.line))
    return out


# --- install -----------------------------------------------------------------------------------

def plan_install_steps(a, cfg: Config, overlay, state: Optional[dict], others: List[dict]):
    opts = Options(modules_dir=os.path.abspath(a.modules_dir),
                   servers=[(u, False) for u in a.ase_server] + [(u, True) for u in a.ase_backup],
                   max_fails=a.max_fails, fail_timeout=a.fail_timeout, token_file=a.token_file,
                   fail_mode=a.fail_mode, connect_timeout=a.connect_timeout, timeout=a.timeout,
                   enable_all=a.enable_all, enable_locations=a.enable_location)
    try:
        plan = plan_install(cfg, opts)
    except PlanError as e:
        raise Fail(str(e)) from None
    prev = state or {"modified": [], "created": [], "modules": [], "dirs": []}
    prev_modified = {os.path.realpath(m["path"]): m for m in prev["modified"]}
    prev_created = {os.path.realpath(c["path"]): c for c in prev["created"]}
    prev_modules = {os.path.realpath(m["path"]): m for m in prev["modules"]}
    others_own = owned_paths(others)
    others_modified = {os.path.realpath(m["path"]): st["main"] for st in others for m in st["modified"]}
    new_state = {"modified": [], "created": [], "modules": [], "dirs": list(prev.get("dirs", []))}
    targets = []
    replaced_loaded = False

    for rp, edits in plan.edits.items():
        if rp in others_modified:
            raise Fail(f"{rp} is also changed by the install into {others_modified[rp]}: two installs cannot "
                       "share a changed file; uninstall that one first")
        base = cfg.fs.read(rp)
        targets += staged_file(rp, base, edits)
        orig = prev_modified.get(rp, {}).get("original_sha256", sha256(base))
        new_state["modified"].append({"path": rp, "original_sha256": orig, "insertions": edits})
    for rp in prev_modified:
        if rp not in plan.edits:
            targets.append((OLD_EDITS, rp, overlay[rp], False))

    for path, (content, stage) in plan.creates.items():
        rp = os.path.realpath(path)
        cur = read(path)
        written = None
        if cur is not None:
            if rp in prev_created:
                written = prev_created[rp].get("written", "").encode("utf-8", "surrogateescape")
            elif rp in others_own:
                if cur != content:
                    raise Fail(f"{path} belongs to the install into {others_own[rp]} too, with other settings: "
                               "give both installs the same flags, or uninstall that one first")
            elif cur.startswith(MANAGED_FILE):
                warn(f"{path} was left by an earlier install (it starts with '{MANAGED_FILE.decode()}'): "
                     "taking it over")
            else:
                raise Fail(f"{path} exists and was not written by this script: move it away first")
        if written is not None and stage == STAGE_SETTINGS:
            try:
                content = ase_conf.merge(cur, written, content, path)
            except ase_conf.AseConfEdited as e:
                raise Fail(str(e)) from None
            if cur != written:
                say(f"{path}: keeping the lines you added to it")
        targets.append((stage, path, content, False))
        new_state["created"].append({"path": path, "stage": stage,
                                     "written": content.decode("utf-8", "surrogateescape")})
    planned = {os.path.realpath(p) for p in plan.creates}
    for rp, c in prev_created.items():
        if rp not in planned and rp not in others_own:
            targets.append((OLD_FILES, c["path"], None, False))

    for name in MODULE_FILES:
        src = os.path.join(a.modules_from, name)
        dest = os.path.join(opts.modules_dir, name)
        rp = os.path.realpath(dest)
        if not os.path.isfile(src):
            raise Fail(f"{src} not found: build the modules first (scripts/build.sh --nginx system, or --build)")
        ours = prev_modules.pop(rp, None) is not None or rp in others_own
        cur, data = read(dest), read(src)
        if cur is not None and cur != data:
            if not ours:
                raise Fail(f"{dest} exists and was not installed by this script: move it away first")
            replaced_loaded = True
        elif cur is not None and not ours:
            continue  # the same bytes were already there: not ours to remove later
        targets.append((STAGE_MODULES, dest, data, True))
        new_state["modules"].append({"path": dest})
    for rp, m in prev_modules.items():  # installed before into another modules directory
        if rp not in others_own:
            targets.append((OLD_MODULES, m["path"], None, True))

    steps = order(targets, read, skip_unchanged=True)
    if steps:
        new_state["installed"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        new_state["flags"] = a.flags_text
    elif state:
        new_state = state
    return steps, new_state, plan, replaced_loaded


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


# --- uninstall ---------------------------------------------------------------------------------

def plan_uninstall_steps(state: dict, others: List[dict]):
    others_own = owned_paths(others)
    targets = []
    for m in state["modified"]:
        cur = read(m["path"])
        if cur is None:
            raise Fail(f"{m['path']} (changed by the install) is gone; restore it from a backup")
        base, notes = strip_or_fail(m["path"], cur, m["insertions"])
        for n in notes:
            warn(f"{m['path']}: the lines '{n}' were already taken out by hand")
        if sha256(base) != m["original_sha256"]:
            warn(f"{m['path']} was edited since the install; only ngx-ase's lines are taken out")
        t, _ = unstaged_file(m["path"], cur, m["insertions"])
        targets += t
    for c in state["created"]:
        rp = os.path.realpath(c["path"])
        cur = read(c["path"])
        if rp in others_own or cur is None:
            continue
        if c.get("stage") == STAGE_SETTINGS and cur.decode("utf-8", "surrogateescape") != c.get("written"):
            warn(f"{c['path']} has lines you added; it is removed, its copy is in the backup")
        targets.append((UNINSTALL_KEY[c.get("stage", STAGE_SETTINGS)], c["path"], None, False))
    for m in state["modules"]:
        if os.path.realpath(m["path"]) not in others_own and os.path.lexists(m["path"]):
            targets.append((UNINSTALL_KEY[STAGE_MODULES], m["path"], None, True))
    return order(targets, read, skip_unchanged=False)


# --- the run -----------------------------------------------------------------------------------

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
    try:
        restored = rollback_pending(p)
        sf.save(p["state_before"])
    except (JournalError, OSError) as e:
        raise Fail(str(e)) from None
    for path in restored:
        say(f"put back {path}")
    return p["state_before"]


def backup_root_for(a) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = os.path.join(a.backup_dir, f"{stamp}-{a.command}")
    n = 1
    while os.path.exists(root):
        n += 1
        root = os.path.join(a.backup_dir, f"{stamp}-{a.command}.{n}")
    return root


def run(a) -> int:
    conf = os.path.abspath(a.conf)
    a.conf = conf
    if not os.path.isfile(conf):
        raise Fail(f"{conf}: no such configuration file")
    handle_signals()
    sf = StateFile(conf)
    lock(sf.conf_dir)
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="main.py", description=__doc__)
    p.add_argument("command", choices=["install", "uninstall"])
    p.add_argument("--nginx", required=True)
    p.add_argument("--conf", required=True)
    p.add_argument("--prefix")
    p.add_argument("--error-log-flag", action="store_true", help="nginx takes -e (1.19.5+)")
    p.add_argument("--modules-dir", required=True)
    p.add_argument("--modules-from", required=True)
    p.add_argument("--backup-dir", required=True)
    p.add_argument("--ase-server", action="append", default=[])
    p.add_argument("--ase-backup", action="append", default=[])
    p.add_argument("--max-fails")
    p.add_argument("--fail-timeout")
    p.add_argument("--token-file")
    p.add_argument("--fail-mode")
    p.add_argument("--connect-timeout")
    p.add_argument("--timeout")
    p.add_argument("--enable-all", action="store_true")
    p.add_argument("--enable-location", action="append", default=[])
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--flags-text", default="")
    a = p.parse_args(argv)
    try:
        return run(a)
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"error: interrupted by {e} before any file was changed", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
