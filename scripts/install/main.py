"""The config-editing half of scripts/install.sh (which finds nginx and checks the modules
first, then runs this). Usage: main.py install|uninstall [options]; see install.sh --help.

Every change is one transaction: a timestamped backup of each file it changes, writes as a
new file renamed into place, then `nginx -t`; if that fails, every file is put back and
nginx's message is printed. A state file (.ngx-ase-state.json, next to the main
configuration file) records what was created and what was inserted where, so that a second
install changes nothing and --uninstall gives back the original bytes."""

from __future__ import annotations

import argparse
import difflib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nginx_conf import FS, Config, ConfError  # noqa: E402
from patch import (MODULE_FILES, STATE_FILE, Options, PlanError, apply_edits,  # noqa: E402
                   managed_markers, plan_install, strip_edits)

BOLD, RESET = ("\033[1m", "\033[0m")


def say(msg: str) -> None:
    print(f"{BOLD}==> {msg}{RESET}", file=sys.stderr)


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


class Fail(Exception):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


# --- the state file --------------------------------------------------------------------------

class State:
    """Paths inside the configuration directory are stored relative to it, so a copied tree
    keeps working."""

    def __init__(self, conf_dir: str):
        self.conf_dir = conf_dir
        self.path = os.path.join(conf_dir, STATE_FILE)

    def rel(self, p: str) -> str:
        r = os.path.relpath(p, self.conf_dir)
        return p if r.startswith("..") else r

    def abs(self, p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(self.conf_dir, p)

    def load(self) -> Optional[dict]:
        raw = read(self.path)
        if raw is None:
            return None
        try:
            st = json.loads(raw)
        except ValueError as e:
            raise Fail(f"{self.path} is not valid JSON ({e}); restore it from a backup") from None
        for m in st.get("modified", []):
            m["path"] = self.abs(m["path"])
            m["insertions"] = [(o, t.encode("utf-8", "surrogateescape")) for o, t in m["insertions"]]
        for c in st.get("created", []) + st.get("modules", []):
            c["path"] = self.abs(c["path"])
        return st

    def dump(self, st: dict) -> bytes:
        out = dict(st)
        out["modified"] = [{"path": self.rel(m["path"]), "original_sha256": m["original_sha256"],
                            "insertions": [[o, t.decode("utf-8", "surrogateescape")] for o, t in m["insertions"]]}
                           for m in st["modified"]]
        out["created"] = [dict(c, path=self.rel(c["path"])) for c in st["created"]]
        out["modules"] = [dict(c, path=self.rel(c["path"])) for c in st["modules"]]
        return (json.dumps(out, indent=2, sort_keys=True) + "\n").encode()


# --- the transaction ---------------------------------------------------------------------------

class Txn:
    def __init__(self, backup_root: str):
        self.backup_root = backup_root
        self.undo: List[Tuple[str, Optional[str]]] = []  # (realpath, backup copy or None if new)
        self.backed_up: List[str] = []

    def _backup(self, rp: str) -> Optional[str]:
        if not os.path.lexists(rp):
            return None
        dst = os.path.join(self.backup_root, rp.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(rp, dst)
        self.backed_up.append(rp)
        return dst

    @staticmethod
    def _write_new_inode(rp: str, data: Optional[bytes], src: Optional[str] = None,
                         like: Optional[os.stat_result] = None, mode: int = 0o644) -> None:
        """Writes a new file and renames it over rp: a process that has rp open or mapped
        keeps the old inode."""
        tmp = os.path.join(os.path.dirname(rp), f".{os.path.basename(rp)}.ngx-ase-tmp")
        try:
            if src is not None:
                shutil.copyfile(src, tmp)
            else:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            os.chmod(tmp, (like.st_mode & 0o7777) if like else mode)
            if like and os.geteuid() == 0:
                os.chown(tmp, like.st_uid, like.st_gid)
            os.replace(tmp, rp)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)

    def write(self, path: str, data: Optional[bytes] = None, src: Optional[str] = None,
              mode: int = 0o644) -> None:
        rp = os.path.realpath(path)
        like = os.stat(rp) if os.path.exists(rp) else None
        self.undo.append((rp, self._backup(rp)))
        os.makedirs(os.path.dirname(rp), exist_ok=True)
        self._write_new_inode(rp, data, src, like, mode)

    def remove(self, path: str) -> None:
        rp = os.path.realpath(path)
        if not os.path.lexists(rp):
            return
        self.undo.append((rp, self._backup(rp)))
        os.unlink(rp)

    def rollback(self) -> List[str]:
        problems = []
        for rp, backup in reversed(self.undo):
            try:
                if backup is None:
                    if os.path.lexists(rp):
                        os.unlink(rp)
                else:
                    st = os.stat(backup)
                    self._write_new_inode(rp, None, src=backup, like=st)
            except OSError as e:
                problems.append(f"{rp}: {e}")
        return problems


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


# --- commands ----------------------------------------------------------------------------------

def base_view(state: Optional[dict]) -> Tuple[Dict[str, Optional[bytes]], List[str]]:
    """The configuration as it was before the install: the overlay that takes our insertions
    out and hides our files, and warnings about files edited since."""
    overlay: Dict[str, Optional[bytes]] = {}
    warnings = []
    if not state:
        return overlay, warnings
    for m in state["modified"]:
        cur = read(m["path"])
        if cur is None:
            raise Fail(f"{m['path']} (changed by the install) is gone; restore it from a backup")
        base = strip_edits(cur, m["insertions"])
        if base is None:
            raise Fail(f"cannot find the lines ngx-ase inserted in {m['path']} (edited since?): "
                       "take out the lines between '# ngx-ase: managed begin' and 'end' by hand "
                       "(or restore a backup), then delete " + STATE_FILE)
        if sha256(base) != m["original_sha256"]:
            warnings.append(f"{m['path']} was edited since the install; only ngx-ase's lines are taken out")
        overlay[os.path.realpath(m["path"])] = base
    for c in state["created"]:
        overlay[os.path.realpath(c["path"])] = None
    return overlay, warnings


def run(a) -> int:
    conf = os.path.abspath(a.conf)
    a.conf = conf
    if not os.path.isfile(conf):
        raise Fail(f"{conf}: no such configuration file")
    st = State(os.path.dirname(conf))
    # One install at a time per configuration: a lock on its directory (no file is created).
    lock_fd = os.open(st.conf_dir, os.O_RDONLY)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise Fail(f"another scripts/install.sh is working on {st.conf_dir}; try again when it is done") from None
    state = st.load()
    overlay, warnings = base_view(state)
    for w in warnings:
        warn(w)
    try:
        cfg = Config(conf, FS(overlay))
    except ConfError as e:
        raise Fail(f"cannot parse the configuration: {e}") from None
    if not state:
        marks = managed_markers(cfg)
        if marks:
            raise Fail(f"{marks[0][0]}:{marks[0][1]} has ngx-ase managed lines but there is no "
                       f"{st.path}: take them out by hand or restore a backup first")

    old_state = state or {"modified": [], "created": [], "modules": []}
    changes: List[Tuple[str, Optional[bytes], Optional[bytes]]] = []  # path, old, new
    module_ops: List[Tuple[str, Optional[str], str]] = []  # dest, src (None: remove), what
    new_state = None

    if a.command == "install":
        opts = Options(modules_dir=os.path.abspath(a.modules_dir),
                       servers=[(u, False) for u in a.ase_server] + [(u, True) for u in a.ase_backup],
                       max_fails=a.max_fails, fail_timeout=a.fail_timeout, token_file=a.token_file,
                       fail_mode=a.fail_mode, connect_timeout=a.connect_timeout, timeout=a.timeout,
                       enable_all=a.enable_all, enable_locations=a.enable_location)
        try:
            plan = plan_install(cfg, opts)
        except PlanError as e:
            raise Fail(str(e)) from None

        new_state = {"format": 1, "modified": [], "created": [], "modules": []}
        prev_modified = {os.path.realpath(m["path"]): m for m in old_state["modified"]}
        for rp, edits in plan.edits.items():
            base = cfg.fs.read(rp)
            new = apply_edits(base, edits)
            cur = read(rp)
            if cur != new:
                changes.append((rp, cur, new))
            orig = prev_modified.get(rp, {}).get("original_sha256", sha256(base))
            new_state["modified"].append({"path": rp, "original_sha256": orig, "insertions": edits})
        for rp, m in prev_modified.items():
            if rp not in plan.edits:
                changes.append((rp, read(rp), overlay[rp]))
        prev_created = {os.path.realpath(c["path"]) for c in old_state["created"]}
        for path, content in plan.creates.items():
            cur = read(path)
            if cur is not None and os.path.realpath(path) not in prev_created:
                raise Fail(f"{path} exists and was not written by this script: move it away first")
            if cur != content:
                changes.append((path, cur, content))
            new_state["created"].append({"path": path})
        for c in old_state["created"]:
            if os.path.realpath(c["path"]) not in {os.path.realpath(p) for p in plan.creates}:
                changes.append((c["path"], read(c["path"]), None))

        prev_modules = {os.path.realpath(m["path"]): m for m in old_state["modules"]}
        for name in MODULE_FILES:
            src = os.path.join(a.modules_from, name)
            dest = os.path.join(opts.modules_dir, name)
            if not os.path.isfile(src):
                raise Fail(f"{src} not found: build the modules first (scripts/build.sh --nginx system, or --build)")
            prev = prev_modules.pop(os.path.realpath(dest), None)
            cur = read(dest)
            if cur is None:
                module_ops.append((dest, src, "new"))
            elif cur != read(src):
                if prev is None:
                    raise Fail(f"{dest} exists and was not installed by this script: move it away first")
                module_ops.append((dest, src, "replace"))
            elif prev is None:
                continue  # the same bytes were already there: not ours to remove later
            new_state["modules"].append({"path": dest})
        for rp in prev_modules:  # installed before into another modules directory
            module_ops.append((rp, None, "remove"))
        if changes or module_ops:
            new_state["installed"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            new_state["flags"] = a.flags_text
    else:  # uninstall
        if not state:
            say(f"ngx-ase is not installed in {conf} (no {STATE_FILE}): nothing to do")
            return 0
        for m in state["modified"]:
            rp = os.path.realpath(m["path"])
            changes.append((rp, read(rp), overlay[rp]))
        for c in state["created"]:
            if read(c["path"]) is not None:
                changes.append((c["path"], read(c["path"]), None))
        for m in state["modules"]:
            if os.path.lexists(m["path"]):
                module_ops.append((m["path"], None, "remove"))

    state_change = None
    if changes or module_ops:
        state_change = (st.path, read(st.path), st.dump(new_state) if new_state else None)

    if not changes and not module_ops:
        say(f"already installed as asked in {conf}: nothing changed")
        return 0

    if a.dry_run:
        say("dry run: these are the changes; nothing was written")
        for path, old, new in changes:
            show_diff(path, old, new)
        print(f"state: {'write' if state_change[2] is not None else 'remove'} {state_change[0]}")
        for dest, src, what in module_ops:
            print(f"module: {what} {dest}" + (f" (from {src})" if src else ""))
        return 0

    ok, out = nginx_test(a) if a.command == "install" else (True, "")
    if not ok:
        raise Fail("nginx -t fails on the configuration as it is now, before any change; fix that first:\n" + out)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup_root = os.path.join(a.backup_dir, f"{stamp}-{a.command}")
    n = 1
    while os.path.exists(backup_root):
        n += 1
        backup_root = os.path.join(a.backup_dir, f"{stamp}-{a.command}.{n}")
    txn = Txn(backup_root)
    replaced_loaded = False
    try:
        for dest, src, what in module_ops:
            if src is None:
                txn.remove(dest)
            else:
                txn.write(dest, src=src, mode=0o644)
                replaced_loaded |= what == "replace"
        for path, old, new in changes:
            if new is None:
                txn.remove(path)
            else:
                txn.write(path, new)
        path, old, new = state_change
        if new is None:
            txn.remove(path)
        else:
            txn.write(path, new)
        ok, out = nginx_test(a)
        if not ok:
            raise Fail("nginx -t failed on the result, so every file was put back as it was. nginx said:\n" + out)
    except BaseException as e:
        problems = txn.rollback()
        if problems:
            print("error: could not restore: " + "; ".join(problems) + f" (backups in {backup_root})",
                  file=sys.stderr)
        if isinstance(e, Fail):
            raise
        raise Fail(f"{type(e).__name__}: {e}; every file was put back") from None

    for path, old, new in changes + [state_change]:
        verb = "created" if old is None else ("removed" if new is None else "changed")
        say(f"{verb} {path}")
    for dest, src, what in module_ops:
        say({"new": "installed", "replace": "replaced (new inode)", "remove": "removed"}[what] + f" {dest}")
    if txn.backed_up:
        say(f"backups of the {len(txn.backed_up)} file(s) it changed: {backup_root}")
    say("nginx -t: the configuration test is successful")
    if a.command == "install":
        if replaced_loaded:
            say("RESTART nginx now (e.g. systemctl restart nginx), do NOT reload: it replaced module "
                "files that a running nginx has loaded, and a reload would mix the old and new modules")
        elif any(w != "remove" for _, _, w in module_ops):
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


if __name__ == "__main__":
    sys.exit(main())
