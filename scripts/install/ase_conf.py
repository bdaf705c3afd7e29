"""The ase.conf the install writes (the http-level ASE settings), and how a re-install keeps
what the operator added to it.

The settings from the flags sit between managed begin/end markers; the operator may add
their own http-level directives (ase_zone, ase_keepalive, ase_ssl_trusted_certificate, ...)
below them. A re-install replaces only the managed lines and keeps the rest; if the managed
lines themselves were edited, it refuses and shows the difference."""

from __future__ import annotations

import difflib
from typing import Optional

MARK = "ngx-ase: managed"
BEGIN = f"# {MARK} begin (settings)\n".encode()
END = f"# {MARK} end (settings)\n".encode()


class AseConfEdited(Exception):
    pass


def _quote(arg: str) -> str:
    from nginx_conf import quote  # one quoting rule for every file it writes
    return quote(arg)


def ase_conf_text(o) -> str:
    out = [f"# {MARK} file (http-level ASE settings): written by ngx-ase's scripts/install.sh,",
           "# removed by its --uninstall; run the install again to change the lines below.",
           BEGIN.decode().rstrip("\n")]
    for url, backup in o.servers:
        line = f"ase_server {_quote(url)}"
        if backup:
            line += " backup"
        if o.max_fails:
            line += f" max_fails={o.max_fails}"
        if o.fail_timeout:
            line += f" fail_timeout={o.fail_timeout}"
        out.append(line + ";")
    if o.token_file:
        out.append(f"ase_token_file {_quote(o.token_file)};")
    if o.fail_mode:
        out.append(f"ase_fail_mode {_quote(o.fail_mode)};")
    if o.connect_timeout:
        out.append(f"ase_connect_timeout {_quote(o.connect_timeout)};")
    if o.timeout:
        out.append(f"ase_timeout {_quote(o.timeout)};")
    if o.enable_all:
        out += ["ase_request on;", "ase_response on;"]
    out += [END.decode().rstrip("\n"),
            "# Your own http-level ase_* settings (ase_zone, ase_keepalive, ase_ssl_trusted_certificate,",
            "# ...) go below this line: a re-install keeps them."]
    return "\n".join(out) + "\n"


def _managed(data: bytes) -> Optional[slice]:
    b = data.find(BEGIN)
    e = data.find(END, b + 1) if b >= 0 else -1
    if b < 0 or e < 0 or data.count(BEGIN) != 1 or data.count(END) != 1:
        return None
    return slice(b, e + len(END))


def merge(current: bytes, written: Optional[bytes], new: bytes, path: str) -> bytes:
    """What a re-install writes to ase.conf: new when the file is as the last install wrote
    it; else the operator's lines around the managed ones kept. Raises AseConfEdited with
    the diff when the managed lines were changed by hand."""
    if written is None:
        return new
    cur_m, old_m, new_m = _managed(current), _managed(written), _managed(new)
    if cur_m is not None and old_m is not None and current[cur_m] == written[old_m]:
        return current[:cur_m.start] + new[new_m] + current[cur_m.stop:]
    diff = "".join(difflib.unified_diff(written.decode("utf-8", "replace").splitlines(True),
                                        current.decode("utf-8", "replace").splitlines(True),
                                        fromfile=f"{path} (as the install wrote it)",
                                        tofile=f"{path} (now)"))
    raise AseConfEdited(f"{path}: the lines between '{BEGIN.decode().strip()}' and its end were edited by hand; "
                        "put your own settings below the end marker (a re-install keeps them) or in a file of "
                        f"your own, then run the install again:\n{diff}")
