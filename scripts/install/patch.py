"""Install and uninstall planning: what to insert where, what to create, and how to take
exactly that out again. Pure functions over a parsed Config; nothing here writes a file."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from nginx_conf import Config, Directive, has_glob, quote

MARK = "ngx-ase: managed"
MODULE_FILES = ["ngx_ase_common_module.so", "ngx_http_ase_request_module.so",
                "ngx_http_ase_response_module.so"]
OUR_MODULE_NAMES = set(MODULE_FILES)
MODULES_ENABLED_FILE = "50-ngx-ase.conf"
ASE_CONF = "ase.conf"
STATE_FILE = ".ngx-ase-state.json"  # a dotfile: nginx's include globs never match it


class PlanError(Exception):
    pass


@dataclass
class Options:
    modules_dir: str
    servers: List[Tuple[str, bool]] = field(default_factory=list)  # (url, is_backup)
    max_fails: Optional[str] = None
    fail_timeout: Optional[str] = None
    token_file: Optional[str] = None
    fail_mode: Optional[str] = None
    connect_timeout: Optional[str] = None
    timeout: Optional[str] = None
    enable_all: bool = False
    enable_locations: List[str] = field(default_factory=list)


@dataclass
class Plan:
    # realpath of a file to modify -> [(offset in the original, inserted bytes)], sorted
    edits: Dict[str, List[Tuple[int, bytes]]] = field(default_factory=dict)
    # path of a file to create -> its content
    creates: Dict[str, bytes] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def insert(self, path: str, offset: int, text: bytes) -> None:
        lst = self.edits.setdefault(os.path.realpath(path), [])
        if any(o == offset and t == text for o, t in lst):
            return
        lst.append((offset, text))
        lst.sort(key=lambda e: e[0])


# --- text helpers -------------------------------------------------------------------------

def newline_of(data: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in data else b"\n"


def line_start(data: bytes, pos: int) -> int:
    return data.rfind(b"\n", 0, pos) + 1


def indent_at(data: bytes, pos: int) -> Optional[bytes]:
    """The whitespace before pos on its line, or None when something else precedes it."""
    ls = line_start(data, pos)
    prefix = data[ls:pos]
    return prefix if prefix.strip(b" \t") == b"" else None


def indent_unit(data: bytes) -> bytes:
    tabs = sum(1 for l in data.split(b"\n") if l.startswith(b"\t"))
    spaces = sum(1 for l in data.split(b"\n") if l.startswith(b" "))
    return b"\t" if tabs > spaces else b"    "


def snippet(purpose: str, lines: List[str], indent: bytes, nl: bytes) -> bytes:
    body = [f"# {MARK} begin ({purpose})"] + lines + [f"# {MARK} end ({purpose})"]
    return b"".join(indent + l.encode("utf-8", "surrogateescape") + nl for l in body)


def insert_before(data: bytes, d: Directive, prev_end: int, purpose: str, lines: List[str],
                  indent: Optional[bytes] = None) -> Tuple[int, bytes]:
    """Whole lines just before directive d (prev_end: where the directive before it, or the
    block's "{", ends)."""
    nl = newline_of(data)
    ls = line_start(data, d.start)
    ind = indent_at(data, d.start)
    if ls >= prev_end and ind is not None:
        return ls, snippet(purpose, lines, ind if indent is None else indent, nl)
    # d shares its line with something before it: put the snippet right before d.
    return d.start, snippet(purpose, lines, b"", nl)


def insert_after(data: bytes, d: Directive, next_start: int, purpose: str, lines: List[str]) -> Tuple[int, bytes]:
    """Whole lines just after directive d (next_start: where the next thing begins)."""
    nl = newline_of(data)
    eol = data.find(b"\n", d.end)
    ind = indent_at(data, d.start) or b""
    if eol != -1 and eol < next_start:
        return eol + 1, snippet(purpose, lines, ind, nl)
    if eol == -1 and next_start >= len(data):  # d ends the file without a newline
        return d.end, nl + snippet(purpose, lines, ind, nl).rstrip(b"\r\n")
    return d.end, nl + snippet(purpose, lines, ind, nl)


def insert_block_start(data: bytes, d: Directive, purpose: str, lines: List[str]) -> Tuple[int, bytes]:
    """Whole lines at the start of d's block."""
    nl = newline_of(data)
    first = d.block[0].start if d.block else d.block_end
    eol = data.find(b"\n", d.block_start)
    if eol != -1 and eol < first:
        ind = None
        if d.block:
            ind = indent_at(data, d.block[0].start)
        if ind is None:
            ind = (indent_at(data, d.start) or b"") + indent_unit(data)
        return eol + 1, snippet(purpose, lines, ind, nl)
    # "{" and what follows it share a line: open a line after "{".
    ind = (indent_at(data, d.start) or b"") + indent_unit(data)
    return d.block_start, nl + snippet(purpose, lines, ind, nl)


def apply_edits(data: bytes, edits: List[Tuple[int, bytes]]) -> bytes:
    out, pos = [], 0
    for off, text in sorted(edits, key=lambda e: e[0]):
        out.append(data[pos:off])
        out.append(text)
        pos = off
    out.append(data[pos:])
    return b"".join(out)


def strip_edits(data: bytes, edits: List[Tuple[int, bytes]]) -> Optional[bytes]:
    """Takes insertions made by apply_edits out again. First at their recorded places; if the
    file was edited since, each snippet where it occurs exactly once. None if impossible."""
    shift, ok = 0, True
    for off, text in sorted(edits, key=lambda e: e[0]):
        if data[off + shift:off + shift + len(text)] != text:
            ok = False
            break
        shift += len(text)
    if ok:
        out, pos, shift = [], 0, 0
        for off, text in sorted(edits, key=lambda e: e[0]):
            out.append(data[pos:off + shift])
            pos = off + shift + len(text)
            shift += len(text)
        out.append(data[pos:])
        return b"".join(out)
    for _, text in edits:
        if data.count(text) != 1:
            return None
        i = data.find(text)
        data = data[:i] + data[i + len(text):]
    return data


# --- finding things in the configuration ----------------------------------------------------

def _prev_end(siblings: List[Directive], d: Directive, block_start: int) -> int:
    i = siblings.index(d)
    return siblings[i - 1].end if i > 0 else block_start


def managed_markers(cfg: Config) -> List[Tuple[str, int]]:
    out = []
    for path, pf in cfg.files.items():
        for c in pf.comments:
            if c.value.strip().startswith(MARK.encode()):
                out.append((path, c.line))
    return out


def _include_dir(cfg: Config, d: Directive) -> Tuple[str, str]:
    full = cfg.full_name(d.args[0])
    return os.path.dirname(full), os.path.basename(full)


def find_http(cfg: Config) -> Directive:
    https = [d for d, ctx in cfg.walk() if ctx == () and d.name == "http" and d.block is not None]
    if not https:
        raise PlanError(f"no http block in {cfg.main} or the files it includes")
    return https[0]


def plan_install(cfg: Config, o: Options) -> Plan:
    plan = Plan()
    data_of = lambda path: cfg.files[path].data  # noqa: E731

    # Our modules must not be loaded already by lines we do not manage.
    for d, ctx in cfg.walk():
        if d.name == "load_module" and d.args and os.path.basename(d.args[0]) in OUR_MODULE_NAMES:
            raise PlanError(f"{d.path}:{d.line} already loads {d.args[0]} (not a line this script "
                            "manages): remove it, then run the install again")

    # 1. load_module lines: a file in modules-enabled/ when the layout includes it (Debian),
    #    else in the main file, after its load_module lines or before its first block/include.
    lm_lines = [f"load_module {quote(os.path.join(o.modules_dir, m))};" for m in MODULE_FILES]
    target = None
    for d in cfg.root:
        if d.name == "include" and d.block is None and d.args and has_glob(d.args[0]):
            dirname, pattern = _include_dir(cfg, d)
            if os.path.basename(dirname) == "modules-enabled" and os.path.isdir(dirname) \
                    and fnmatch.fnmatchcase(MODULES_ENABLED_FILE, pattern):
                target = os.path.join(dirname, MODULES_ENABLED_FILE)
                break
    if target:
        plan.creates[target] = (f"# {MARK} file (load_module): written by ngx-ase's scripts/install.sh, "
                                "removed by its --uninstall\n" + "\n".join(lm_lines) + "\n").encode()
    else:
        root = cfg.root
        data = data_of(cfg.main)
        first = next((i for i, d in enumerate(root) if d.block is not None or d.name == "include"), None)
        if first is None:
            raise PlanError(f"{cfg.main} has no block at its top level (no events or http block?)")
        lms = [i for i, d in enumerate(root[:first]) if d.name == "load_module"]
        if lms:
            d = root[lms[-1]]
            off, text = insert_after(data, d, root[lms[-1] + 1].start, "load_module", lm_lines)
        else:
            d = root[first]
            off, text = insert_before(data, d, _prev_end(root, d, 0), "load_module", lm_lines)
        plan.insert(cfg.main, off, text)

    # 2. ase.conf: in conf.d/ when the http block already includes it, else next to the main
    #    file with an include at the start of the http block.
    http = find_http(cfg)
    ase_conf = None
    for d in cfg.children(http.block):
        if d.name == "include" and d.block is None and d.args and has_glob(d.args[0]):
            dirname, pattern = _include_dir(cfg, d)
            if os.path.basename(dirname) == "conf.d" and os.path.isdir(dirname) \
                    and fnmatch.fnmatchcase(ASE_CONF, pattern):
                ase_conf = os.path.join(dirname, ASE_CONF)
                break
    if ase_conf is None:
        ase_conf = os.path.join(cfg.prefix, ASE_CONF)
        off, text = insert_block_start(data_of(http.path), http, "include ase.conf", [f"include {ASE_CONF};"])
        plan.insert(http.path, off, text)
    plan.creates[ase_conf] = ase_conf_text(o).encode("utf-8", "surrogateescape")

    # 3. --enable-location PATH: ase_request/ase_response on in every such location block.
    for loc in o.enable_locations:
        found = [d for d, ctx in cfg.walk()
                 if d.name == "location" and d.block is not None and d.args and d.args[-1] == loc]
        if not found:
            raise PlanError(f"--enable-location {loc}: no location {loc} block in the configuration")
        for d in found:
            for c in cfg.children(d.block):
                if c.name in ("ase_request", "ase_response"):
                    raise PlanError(f"{c.path}:{c.line}: location {loc} already sets {c.name}; "
                                    f"leave out --enable-location {loc} or remove it")
            off, text = insert_block_start(data_of(d.path), d, f"location {loc}",
                                           ["ase_request on;", "ase_response on;"])
            plan.insert(d.path, off, text)
    return plan


def ase_conf_text(o: Options) -> str:
    out = [f"# {MARK} file (http-level ASE settings): written by ngx-ase's scripts/install.sh,",
           "# removed by its --uninstall; run the install again to change it."]
    for url, backup in o.servers:
        line = f"ase_server {quote(url)}"
        if backup:
            line += " backup"
        if o.max_fails:
            line += f" max_fails={o.max_fails}"
        if o.fail_timeout:
            line += f" fail_timeout={o.fail_timeout}"
        out.append(line + ";")
    if o.token_file:
        out.append(f"ase_token_file {quote(o.token_file)};")
    if o.fail_mode:
        out.append(f"ase_fail_mode {quote(o.fail_mode)};")
    if o.connect_timeout:
        out.append(f"ase_connect_timeout {quote(o.connect_timeout)};")
    if o.timeout:
        out.append(f"ase_timeout {quote(o.timeout)};")
    if o.enable_all:
        out += ["ase_request on;", "ase_response on;"]
    return "\n".join(out) + "\n"
