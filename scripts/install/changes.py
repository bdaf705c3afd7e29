"""What an install or an uninstall changes, worked out from the state file and the plan
(nothing here writes a file): the configuration as it was before the install, the targets
of each file in the order steps.py gives them, and the state the change leaves."""

from __future__ import annotations

import os
import time
from typing import Dict, List, Optional, Tuple

import ase_conf
import fileops
import linemap
from journal import owned_paths, sha256
from nginx_conf import FS, Config, ConfError
from patch import (MARK, MODULE_FILES, STAGE_MODULES, STAGE_SETTINGS, Options, PlanError, StripError,
                   plan_install, strip_edits)
from steps import OLD_EDITS, OLD_FILES, OLD_MODULES, UNINSTALL_KEY, order, staged_file, unstaged_file
from ui import Fail, say, warn

MANAGED_FILE = f"# {MARK} file".encode()
read = fileops.read


# --- the configuration as it was before the install -------------------------------------------

def strip_or_fail(path: str, cur: bytes, edits) -> Tuple[bytes, List[str]]:
    try:
        return strip_edits(cur, edits)
    except StripError as e:
        raise Fail(f"{path}:{e.line}: {e.msg}: take out the lines from '# {MARK} begin (...)' to its "
                   "'end' marker there by hand (or restore a backup), then run the same command again") from None


def without_our_lines(m: dict):
    """A file the install changed, as it is now and with ngx-ase's lines taken out (warning
    about lines already taken out by hand and about the operator's own edits)."""
    cur = read(m["path"])
    if cur is None:
        raise Fail(f"{m['path']} (changed by the install) is gone; restore it from a backup")
    base, notes = strip_or_fail(m["path"], cur, m["insertions"])
    for n in notes:
        warn(f"{m['path']}: the lines '{n}' were already taken out by hand")
    if sha256(base) != m["original_sha256"]:
        warn(f"{m['path']} was edited since the install; only ngx-ase's lines are taken out")
    return cur, base


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
        cur, base = without_our_lines(m)
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

class _Install:
    """What an install changes, file group by file group; collects the targets and the state
    it leaves."""

    def __init__(self, a, cfg: Config, overlay, state: Optional[dict], others: List[dict]):
        self.a, self.cfg, self.overlay = a, cfg, overlay
        prev = state or {"modified": [], "created": [], "modules": [], "dirs": []}
        self.prev_modified = {os.path.realpath(m["path"]): m for m in prev["modified"]}
        self.prev_created = {os.path.realpath(c["path"]): c for c in prev["created"]}
        self.prev_modules = {os.path.realpath(m["path"]): m for m in prev["modules"]}
        self.others_own = owned_paths(others)
        self.others_modified = {os.path.realpath(m["path"]): st["main"] for st in others for m in st["modified"]}
        self.new_state = {"modified": [], "created": [], "modules": [], "dirs": list(prev.get("dirs", []))}
        self.targets: list = []
        self.replaced_loaded = False

    def modified(self, plan) -> None:
        for rp, edits in plan.edits.items():
            if rp in self.others_modified:
                raise Fail(f"{rp} is also changed by the install into {self.others_modified[rp]}: two installs "
                           "cannot share a changed file; uninstall that one first")
            base = self.cfg.fs.read(rp)
            self.targets += staged_file(rp, base, edits)
            orig = self.prev_modified.get(rp, {}).get("original_sha256", sha256(base))
            self.new_state["modified"].append({"path": rp, "original_sha256": orig, "insertions": edits})
        for rp in self.prev_modified:
            if rp not in plan.edits:
                self.targets.append((OLD_EDITS, rp, self.overlay[rp], False))

    def created(self, plan) -> None:
        for path, (content, stage) in plan.creates.items():
            content = self._created_content(path, content, stage)
            self.targets.append((stage, path, content, False))
            self.new_state["created"].append({"path": path, "stage": stage,
                                              "written": content.decode("utf-8", "surrogateescape")})
        planned = {os.path.realpath(p) for p in plan.creates}
        for rp, c in self.prev_created.items():
            if rp not in planned and rp not in self.others_own:
                self.targets.append((OLD_FILES, c["path"], None, False))

    def _created_content(self, path: str, content: bytes, stage: int) -> bytes:
        """What to write to a file the install creates, given what is there now."""
        rp = os.path.realpath(path)
        cur = read(path)
        if cur is None:
            return content
        if rp in self.prev_created:
            written = self.prev_created[rp].get("written")  # None: a state from before it was recorded
            if written is None or stage != STAGE_SETTINGS:
                return content
            written = written.encode("utf-8", "surrogateescape")
            try:
                merged = ase_conf.merge(cur, written, content, path)
            except ase_conf.AseConfEdited as e:
                raise Fail(str(e)) from None
            if cur != written:
                say(f"{path}: keeping the lines you added to it")
            return merged
        if rp in self.others_own:
            if cur != content:
                raise Fail(f"{path} belongs to the install into {self.others_own[rp]} too, with other settings: "
                           "give both installs the same flags, or uninstall that one first")
            return content
        if cur.startswith(MANAGED_FILE):
            warn(f"{path} was left by an earlier install (it starts with '{MANAGED_FILE.decode()}'): taking it over")
            return content
        raise Fail(f"{path} exists and was not written by this script: move it away first")

    def modules(self, modules_dir: str) -> None:
        for name in MODULE_FILES:
            src = os.path.join(self.a.modules_from, name)
            dest = os.path.join(modules_dir, name)
            rp = os.path.realpath(dest)
            if not os.path.isfile(src):
                raise Fail(f"{src} not found: build the modules first (scripts/build.sh --nginx system, or --build)")
            ours = self.prev_modules.pop(rp, None) is not None or rp in self.others_own
            cur, data = read(dest), read(src)
            if cur is not None and cur != data:
                if not ours:
                    raise Fail(f"{dest} exists and was not installed by this script: move it away first")
                self.replaced_loaded = True
            elif cur is not None and not ours:
                # The same bytes, and no line of the configuration loads them (plan_install
                # refuses that): left by an install whose state is gone. Ours to remove later.
                warn(f"{dest} was left by an earlier install (the same bytes, loaded by no line): taking it over")
            self.targets.append((STAGE_MODULES, dest, data, True))
            self.new_state["modules"].append({"path": dest})
        for rp, m in self.prev_modules.items():  # installed before into another modules directory
            if rp not in self.others_own:
                self.targets.append((OLD_MODULES, m["path"], None, True))


def plan_install_steps(a, cfg: Config, overlay, state: Optional[dict], others: List[dict]):
    """(the steps in order, the state they leave, the plan, whether loaded modules are replaced)"""
    opts = Options(modules_dir=os.path.abspath(a.modules_dir),
                   servers=[(u, False) for u in a.ase_server] + [(u, True) for u in a.ase_backup],
                   max_fails=a.max_fails, fail_timeout=a.fail_timeout, token_file=a.token_file,
                   fail_mode=a.fail_mode, connect_timeout=a.connect_timeout, timeout=a.timeout,
                   enable_all=a.enable_all, enable_locations=a.enable_location)
    try:
        plan = plan_install(cfg, opts)
    except PlanError as e:
        raise Fail(str(e)) from None
    inst = _Install(a, cfg, overlay, state, others)
    inst.modified(plan)
    inst.created(plan)
    inst.modules(opts.modules_dir)
    steps = order(inst.targets, read, skip_unchanged=True)
    new_state = inst.new_state
    if steps:
        new_state["installed"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        new_state["flags"] = a.flags_text
    elif state:
        new_state = state
    return steps, new_state, plan, inst.replaced_loaded


# --- uninstall ---------------------------------------------------------------------------------

def plan_uninstall_steps(state: dict, others: List[dict]):
    others_own = owned_paths(others)
    targets = []
    for m in state["modified"]:
        cur, _ = without_our_lines(m)
        t, _ = unstaged_file(m["path"], cur, m["insertions"])
        targets += t
    for c in state["created"]:
        rp = os.path.realpath(c["path"])
        cur = read(c["path"])
        if rp in others_own or cur is None:
            continue
        written = c.get("written")
        if c.get("stage") == STAGE_SETTINGS and written is not None and cur.decode("utf-8", "surrogateescape") != written:
            warn(f"{c['path']} has lines you added; it is removed, its copy is in the backup")
        targets.append((UNINSTALL_KEY[c.get("stage", STAGE_SETTINGS)], c["path"], None, False))
    for m in state["modules"]:
        if os.path.realpath(m["path"]) not in others_own and os.path.lexists(m["path"]):
            targets.append((UNINSTALL_KEY[STAGE_MODULES], m["path"], None, True))
    return order(targets, read, skip_unchanged=False)
