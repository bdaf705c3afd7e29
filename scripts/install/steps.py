"""The file changes of an install or an uninstall, in a crash-safe order.

Each target is (order key, path, content or None to remove it, whether it is a module).
Sorting by key puts every file before the lines that need it: the modules, then the
load_module lines, then ase.conf, then the lines that include or enable it; an uninstall
goes the other way (the configuration first, the modules last). A file that changes in
several stages (the main file: load_module lines first, the include of ase.conf later) is
written once per stage, so the configuration passes `nginx -t` after every single write."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from patch import STAGE_ENABLE, STAGE_LOAD, STAGE_MODULES, STAGE_SETTINGS, Edit, apply_edits, strip_edits

Target = Tuple[int, str, Optional[bytes], bool]

# Keys of an install: stages 0-3 add, then what the new install no longer needs goes.
OLD_EDITS, OLD_FILES, OLD_MODULES = 4, 5, 6
# Keys of an uninstall: the reverse of the stages.
UNINSTALL_KEY = {STAGE_ENABLE: 0, STAGE_SETTINGS: 1, STAGE_LOAD: 2, STAGE_MODULES: 3}


@dataclass
class Step:
    path: str
    before: Optional[bytes]
    after: Optional[bytes]  # None: remove the file
    module: bool = False  # always a new inode: a running nginx has it mapped


def order(targets: List[Target], read: Callable[[str], Optional[bytes]], skip_unchanged: bool) -> List[Step]:
    """The steps that take each file from its current content through its targets.
    skip_unchanged: leave alone a file whose last target is what it holds already."""
    final: Dict[str, Optional[bytes]] = {}
    for _, path, data, _ in sorted(targets, key=lambda t: t[0]):
        final[path] = data
    running: Dict[str, Optional[bytes]] = {}
    steps = []
    for _, path, data, module in sorted(targets, key=lambda t: t[0]):
        if path not in running:
            running[path] = read(path)
            if skip_unchanged and running[path] == final[path]:
                continue
        elif skip_unchanged and read(path) == final[path]:
            continue
        if running[path] == data:
            continue
        steps.append(Step(path, running[path], data, module))
        running[path] = data
    return steps


def staged_file(path: str, base: bytes, edits: List[Edit]) -> List[Target]:
    """A modified file after each install stage: its base plus the edits up to that stage."""
    return [(k, path, apply_edits(base, [e for e in edits if e[2] <= k]), False)
            for k in (STAGE_LOAD, STAGE_SETTINGS, STAGE_ENABLE)]


def unstaged_file(path: str, current: bytes, edits: List[Edit]) -> Tuple[List[Target], List[str]]:
    """A modified file after each uninstall stage: the edits of that stage and later ones
    taken out. Also returns notes on snippets the operator had already taken out."""
    out, notes = [], []
    for stage in (STAGE_ENABLE, STAGE_SETTINGS, STAGE_LOAD):
        data, n = strip_edits(current, edits, only=[e for e in edits if e[2] >= stage])
        notes += [x for x in n if x not in notes]
        out.append((UNINSTALL_KEY[stage], path, data, False))
    return out, notes


def missing_dirs(steps: List[Step]) -> List[str]:
    """The directories the writes need that do not exist yet, outermost first."""
    out: List[str] = []
    for s in steps:
        if s.after is None:
            continue
        p, chain = os.path.dirname(os.path.abspath(s.path)), []
        while not os.path.isdir(p) and p not in out:
            chain.append(p)
            p = os.path.dirname(p)
        out += reversed(chain)
    return out
