"""The state file, which is also the journal of the change under way.

One state file per main configuration file, next to it: `.ngx-ase-state.<main file name>.json`
(a dotfile: nginx's include globs never match it). It holds

- "state": what the last finished install left (the files it modified with the insertions,
  the files and directories it created, the modules it installed), or null;
- "pending": the change under way, written (and fsync'ed) BEFORE the first file changes:
  the command, every step in order with the file's content hash before and after, where the
  backup of each file is, and the state to restore if it is undone.

A run that finds "pending" (the last one was killed) first undoes that change from the
backups (rollback_pending), then does what it was asked. Paths inside the configuration
directory are stored relative to it, so a copied tree keeps working."""

from __future__ import annotations

import glob
import hashlib
import json
import os
from typing import Dict, List, Optional

import fileops

PREFIX = ".ngx-ase-state."
LEGACY = ".ngx-ase-state.json"  # format 1: one per directory, before the journal


class JournalError(Exception):
    pass


def sha256(data: Optional[bytes]) -> Optional[str]:
    return None if data is None else hashlib.sha256(data).hexdigest()


def state_path(conf: str) -> str:
    return os.path.join(os.path.dirname(conf), f"{PREFIX}{os.path.basename(conf)}.json")


class StateFile:
    def __init__(self, conf: str):
        self.conf = conf
        self.conf_dir = os.path.dirname(conf)
        self.path = state_path(conf)
        self.legacy = os.path.join(self.conf_dir, LEGACY)
        self.legacy_loaded = False

    # --- paths ------------------------------------------------------------------------------
    def rel(self, p: str) -> str:
        r = os.path.relpath(p, self.conf_dir)
        return p if r.startswith("..") else r

    def abs(self, p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(self.conf_dir, p)

    def _map_paths(self, st: Optional[dict], f, saving: bool) -> Optional[dict]:
        """The state with its paths mapped by f, and its insertions made JSON-ready
        (saving) or read back as (offset, bytes, stage) tuples."""
        if st is None:
            return None
        enc = (lambda t: t.decode("utf-8", "surrogateescape")) if saving \
            else (lambda t: t.encode("utf-8", "surrogateescape"))
        ins = (lambda e: [e[0], enc(e[1]), e[2]]) if saving else (lambda e: (e[0], enc(e[1]), e[2]))
        out = dict(st)
        out["modified"] = [dict(m, path=f(m["path"]), insertions=[ins(e) for e in m["insertions"]])
                           for m in st.get("modified", [])]
        out["created"] = [dict(c, path=f(c["path"])) for c in st.get("created", [])]
        out["modules"] = [dict(c, path=f(c["path"])) for c in st.get("modules", [])]
        out["dirs"] = [f(d) for d in st.get("dirs", [])]
        return out

    # --- load / save ------------------------------------------------------------------------
    def load(self) -> dict:
        """{"state": ..., "pending": ...}; both None when nothing is installed."""
        raw = fileops.read(self.path)
        if raw is None:
            return {"state": self._load_legacy(), "pending": None}
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise JournalError(f"{self.path} is not valid JSON ({e}); restore it from a backup") from None
        if doc.get("format") != 2:
            raise JournalError(f"{self.path} was written by another version of scripts/install.sh "
                               "(format {doc.get('format')}): uninstall with that version first")
        doc["state"] = self._map_paths(doc.get("state"), self.abs, False)
        p = doc.get("pending")
        if p:
            p["state_before"] = self._map_paths(p.get("state_before"), self.abs, False)
            p["state_after"] = self._map_paths(p.get("state_after"), self.abs, False)
            p["steps"] = [dict(s, path=self.abs(s["path"])) for s in p["steps"]]
            p["dirs"] = [self.abs(d) for d in p.get("dirs", [])]
        return doc

    def save(self, state: Optional[dict], pending: Optional[dict] = None) -> None:
        """Writes the file as a new inode (atomic); removes it when there is nothing to keep."""
        if state is None and pending is None:
            if os.path.lexists(self.path):
                fileops.remove(self.path)
            self._drop_legacy()
            return
        p = None
        if pending is not None:
            p = dict(pending)
            p["state_before"] = self._map_paths(pending.get("state_before"), self.rel, True)
            p["state_after"] = self._map_paths(pending.get("state_after"), self.rel, True)
            p["steps"] = [dict(s, path=self.rel(s["path"])) for s in pending["steps"]]
            p["dirs"] = [self.rel(d) for d in pending.get("dirs", [])]
        doc = {"format": 2, "main": os.path.basename(self.conf), "state": self._map_paths(state, self.rel, True),
               "pending": p}
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        fileops.write_new_inode(self.path, data, 0o600)
        self._drop_legacy()

    def _drop_legacy(self) -> None:
        if self.legacy_loaded and os.path.lexists(self.legacy):
            fileops.remove(self.legacy)

    def _load_legacy(self) -> Optional[dict]:
        """The state an install before the journal left (.ngx-ase-state.json, format 1), read
        as this main file's when it is nginx.conf or one of the files it modified; the next
        save replaces it."""
        raw = fileops.read(self.legacy)
        if raw is None:
            return None
        try:
            st = json.loads(raw)
        except ValueError:
            return None
        if st.get("format") != 1:
            return None
        st["modified"] = [dict(m, path=self.abs(m["path"])) for m in st.get("modified", [])]
        if os.path.basename(self.conf) != "nginx.conf" and self.conf not in [m["path"] for m in st["modified"]]:
            return None
        for m in st["modified"]:  # load_module lines are stage 1, the others stage 3
            m["insertions"] = [(o, t.encode("utf-8", "surrogateescape"), 1 if "(load_module)" in t else 3)
                               for o, t in m["insertions"]]
        st["created"] = [{"path": self.abs(c["path"]),
                          "stage": 1 if c["path"].endswith("50-ngx-ase.conf") else 2} for c in st.get("created", [])]
        st["modules"] = [{"path": self.abs(c["path"])} for c in st.get("modules", [])]
        st["dirs"] = []
        self.legacy_loaded = True
        return st

    def others(self) -> List[dict]:
        """The installed states of the other main files in this directory (they may share
        conf.d/ase.conf, modules-enabled/ and the modules with this one)."""
        out = []
        for p in sorted(glob.glob(os.path.join(glob.escape(self.conf_dir), PREFIX + "*.json"))):
            if p == self.path:
                continue
            other = StateFile(os.path.join(self.conf_dir, os.path.basename(p)[len(PREFIX):-len(".json")]))
            try:
                doc = other.load()
            except JournalError:
                continue
            for st in (doc["state"], (doc["pending"] or {}).get("state_after")):
                if st:
                    out.append(dict(st, main=other.conf))
        return out


def owned_paths(states: List[dict]) -> Dict[str, str]:
    """realpath of every created file and module of these states -> the main file owning it."""
    out = {}
    for st in states:
        for c in st.get("created", []) + st.get("modules", []):
            out[os.path.realpath(c["path"])] = st["main"]
    return out


def rollback_pending(pending: dict) -> List[str]:
    """Undoes an interrupted change: every file its steps touched gets its content from before
    the change back (from the backups), leftovers of interrupted writes are removed, and the
    directories it created are removed. Raises JournalError when a file is in a state that
    none of the steps explains (changed by someone else since). Returns what it restored."""
    by_path: Dict[str, List[dict]] = {}
    for s in pending["steps"]:
        by_path.setdefault(s["path"], []).append(s)
    plans = []
    for path, steps in by_path.items():
        first = steps[0]
        known = {s["before"] for s in steps} | {s["after"] for s in steps}
        cur = fileops.read(path)
        h = sha256(cur)
        if h == first["before"]:
            plans.append((path, None, steps))  # never changed, or already back
        elif h in known or any(s.get("in_place") and cur is not None and s["before"] is not None
                               and _partial(cur, s) for s in steps):
            plans.append((path, first, steps))
        else:
            raise JournalError(f"{path} is not as the interrupted {pending['command']} left it (changed since?); "
                               f"restore it from {pending['backup_root']} by hand, then delete the \"pending\" "
                               "entry of the state file")
    restored = []
    for path, first, steps in reversed(plans):
        tmp = fileops.tmp_name(path)
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if first is None:
            continue
        if first["before"] is None:
            if os.path.lexists(path):
                fileops.remove(path)
        else:
            with open(first["backup"], "rb") as f:
                data = f.read()
            if sha256(data) != first["before"]:
                raise JournalError(f"the backup {first['backup']} of {path} does not hold what it held before")
            if os.path.exists(path) and (first.get("in_place") or fileops.needs_in_place(path)):
                fileops.write_in_place(path, data)
            else:
                fileops.make_dirs(os.path.dirname(path))
                fileops.write_new_inode(path, data, 0o644, like=None)
                restore_owner_mode(path, first.get("stat"))
        restored.append(path)
    fileops.remove_empty_dirs(pending.get("dirs", []))
    return restored


def _partial(cur: bytes, step: dict) -> bool:
    """An interrupted in-place write of this step (its before and after bytes are kept)."""
    try:
        with open(step["old_copy"], "rb") as f:
            old = f.read()
        with open(step["new_copy"], "rb") as f:
            new = f.read()
    except (OSError, KeyError, TypeError):
        return False
    return fileops.is_partial_write(cur, old, new)


def restore_owner_mode(path: str, st: Optional[List[int]]) -> None:
    """Gives a re-created file the mode and owner the original had (recorded in the step)."""
    if not st:
        return
    os.chmod(path, st[0] & 0o7777)
    if os.geteuid() == 0:
        os.chown(path, st[1], st[2])
