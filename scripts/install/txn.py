"""Runs the steps of a change as one transaction, journaled in the state file.

1. every file a step changes is copied to the backup directory (flushed to disk);
2. the journal (the state file's "pending" entry) is written: the steps with the content
   hashes before and after, the backups, the directories it will create;
3. the steps run in order (steps.py's order: crash-safe);
4. `verify` runs (the include check and `nginx -t`); if it or anything else fails, or a
   signal arrives, every file is put back from the backups;
5. the state file is written without "pending" (the commit).

A process killed anywhere in 3-5 leaves a journal that the next run undoes first
(journal.rollback_pending), so a crash never leaves a half-done change behind."""

from __future__ import annotations

import os
import signal
from typing import Callable, List, Optional

import fileops
from journal import StateFile, rollback_pending, sha256
from steps import Step, missing_dirs


class TxnError(Exception):
    pass


class Interrupted(BaseException):
    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _raise_interrupted(signum, _frame):
    raise Interrupted(signum)


def handle_signals() -> None:
    """SIGTERM and SIGHUP (a dropped ssh session, a cancelled CI job) end the run like
    Ctrl-C: the change under way is undone."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _raise_interrupted)


_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def hold_signals() -> None:
    """Signals wait while files are being put back."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


def release_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)


def _backups(steps: List[Step], backup_root: str) -> List[dict]:
    records, seen = [], set()
    for i, s in enumerate(steps):
        rec = {"path": s.path, "before": sha256(s.before), "after": sha256(s.after), "in_place": False,
               "backup": None}
        if s.before is not None:
            if s.path not in seen:
                rec["backup"] = os.path.join(backup_root, s.path.lstrip("/"))
                fileops.copy_backup(s.path, rec["backup"])
                st = os.stat(s.path)
                rec["stat"] = [st.st_mode, st.st_uid, st.st_gid]
            else:
                rec["backup"] = next(r["backup"] for r in records if r["path"] == s.path and r["backup"])
            if s.after is not None and not s.module and fileops.needs_in_place(s.path):
                # An in-place rewrite can be cut half-way: keep both versions to recognise it.
                rec["in_place"] = True
                rec["old_copy"] = os.path.join(backup_root, ".steps", f"{i}.old")
                rec["new_copy"] = os.path.join(backup_root, ".steps", f"{i}.new")
                for dst, data in ((rec["old_copy"], s.before), (rec["new_copy"], s.after)):
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    with open(dst, "wb") as f:
                        f.write(data)
                        os.fsync(f.fileno())
        seen.add(s.path)
        records.append(rec)
    return records


def _run_step(s: Step, rec: dict) -> None:
    try:
        if s.after is None:
            if os.path.lexists(s.path):
                fileops.remove(s.path)
        elif rec["in_place"]:
            fileops.write_in_place(s.path, s.after)
        else:
            like = os.stat(s.path) if s.before is not None and os.path.exists(s.path) else None
            fileops.write_new_inode(s.path, s.after, 0o644, like)
    except OSError as e:
        raise TxnError(f"cannot {'remove' if s.after is None else 'write'} {s.path}: {e.strerror or e}") from None


def execute(sf: StateFile, command: str, state_before: Optional[dict], state_after: Optional[dict],
            steps: List[Step], backup_root: str, verify: Callable[[], None]) -> List[str]:
    """Returns the directories it created (state_after["dirs"] already lists them)."""
    try:
        records = _backups(steps, backup_root)
    except OSError as e:
        raise TxnError(f"cannot write the backups to {backup_root}: {e.strerror or e}; nothing was changed "
                       "(give a writable directory with --backup-dir)") from None
    dirs = missing_dirs(steps)
    if state_after is not None:
        state_after["dirs"] = list(dict.fromkeys((state_after.get("dirs") or []) + dirs))
    pending = {"command": command, "backup_root": backup_root, "steps": records, "dirs": dirs,
               "state_before": state_before, "state_after": state_after}
    try:
        sf.save(state_before, pending)
    except OSError as e:
        raise TxnError(f"cannot write {sf.path}: {e.strerror or e}; nothing was changed") from None
    try:
        for d in dirs:
            if not os.path.isdir(d):
                os.mkdir(d)
                fileops.changed()
        for s, rec in zip(steps, records):
            _run_step(s, rec)
        if state_after is None:
            fileops.remove_empty_dirs((state_before or {}).get("dirs", []))
        verify()
    except BaseException:
        hold_signals()
        try:
            rollback_pending(pending)
            sf.save(state_before)
        except Exception as e:  # noqa: BLE001 - reported, and the journal still has it
            raise TxnError(f"could not put every file back ({e}); run the same command again to finish "
                           f"undoing it (backups in {backup_root})") from None
        raise
    sf.save(state_after)
    return dirs
