"""Line numbers as the operator has the file.

nginx -t quotes lines of the configuration it read: after a failed install that is the
patched file, which the rollback has already put back. These map a line of one version of a
file to the other (a line diff: the install only inserts whole lines, so the rest line up)."""

from __future__ import annotations

import difflib
import re
from typing import Dict, Optional, Tuple

_AT = re.compile(r" in (\S+):(\d+)")


def map_line(old: bytes, new: bytes, line: int) -> Tuple[int, bool]:
    """Line `line` of new as a line of old: (line, False) when it is one of old's lines,
    (the old line it was inserted before, True) when it is not."""
    a, b = old.split(b"\n"), new.split(b"\n")
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if j1 < line <= j2:
            if tag == "equal":
                return i1 + (line - j1), False
            return i1 + 1, True
    return line, False


def rewrite(msg: str, files: Dict[str, Tuple[Optional[bytes], Optional[bytes]]]) -> str:
    """Rewrites "in FILE:LINE" in nginx's message for each FILE in files ({path: (as the
    operator has it, as nginx read it)})."""
    def sub(m: re.Match) -> str:
        path, line = m.group(1), int(m.group(2))
        if path not in files:
            return m.group(0)
        old, new = files[path]
        if old is None:
            return f" in {path}:{line} (a file ngx-ase writes; it was removed again)"
        if new is None or old == new:
            return m.group(0)
        n, inserted = map_line(old, new, line)
        if inserted:
            return f" in {path}, in the lines ngx-ase inserted before line {n} (taken out again)"
        return f" in {path}:{n}"
    return _AT.sub(sub, msg)
