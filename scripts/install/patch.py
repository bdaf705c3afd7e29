"""Install and uninstall planning: what to insert where, what to create, and how to take
exactly that out again. Pure functions over a parsed Config; nothing here writes a file."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ase_conf import MARK, ase_conf_text  # noqa: F401 (ase_conf_text: planned here, tested through here)
from nginx_conf import Config, Directive, has_glob, quote

MODULE_FILES = ["ngx_ase_common_module.so", "ngx_http_ase_request_module.so",
                "ngx_http_ase_response_module.so"]
OUR_MODULE_NAMES = set(MODULE_FILES)
MODULES_ENABLED_FILE = "50-ngx-ase.conf"
ASE_CONF = "ase.conf"
# Stages of an install, in the order files are written so that every intermediate
# configuration passes `nginx -t` (a file is written before the lines that need it);
# an uninstall goes through them backwards.
STAGE_MODULES, STAGE_LOAD, STAGE_SETTINGS, STAGE_ENABLE = 0, 1, 2, 3


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


Edit = Tuple[int, bytes, int]  # (offset in the original, inserted bytes, stage)


@dataclass
class Plan:
    # realpath of a file to modify -> [(offset in the original, inserted bytes, stage)], sorted
    edits: Dict[str, List[Edit]] = field(default_factory=dict)
    # path of a file to create -> (its content, stage)
    creates: Dict[str, Tuple[bytes, int]] = field(default_factory=dict)
    # the include line it adds for ase.conf: (file, line text) and the file it must match
    include_check: Optional[Tuple[str, str]] = None

    def next_id(self, path: str) -> int:
        """Numbers the snippets of one file, so that two identical ones (two servers with
        `location /` at the same indent) still have markers of their own."""
        return len(self.edits.get(os.path.realpath(path), [])) + 1

    def insert(self, path: str, offset: int, text: bytes, stage: int) -> None:
        lst = self.edits.setdefault(os.path.realpath(path), [])
        lst.append((offset, text, stage))
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


def apply_edits(data: bytes, edits: List[Edit]) -> bytes:
    out, pos = [], 0
    for off, text, *_ in sorted(edits, key=lambda e: e[0]):
        out.append(data[pos:off])
        out.append(text)
        pos = off
    out.append(data[pos:])
    return b"".join(out)


class StripError(Exception):
    def __init__(self, msg: str, line: int):
        self.msg, self.line = msg, line
        super().__init__(msg)


def strip_edits(data: bytes, edits: List[Edit], only: Optional[List[Edit]] = None) -> Tuple[bytes, List[str]]:
    """Takes insertions made by apply_edits out again (all of them, or those in `only`):
    at their recorded places when the file is exactly as the install left it; else, the file
    having been edited since, each snippet where it occurs (each is unique: its markers carry
    a number). A snippet the operator already took out whole (its begin marker is gone too)
    is skipped with a note. Raises StripError naming the line of a snippet edited inside."""
    only = edits if only is None else only
    shift, places = 0, []
    for e in sorted(edits, key=lambda e: e[0]):
        at = e[0] + shift
        if data[at:at + len(e[1])] != e[1]:
            places = None
            break
        places.append((at, e))
        shift += len(e[1])
    if places is not None:
        out, pos = [], 0
        for at, e in places:
            if e in only:
                out.append(data[pos:at])
                pos = at + len(e[1])
        out.append(data[pos:])
        return b"".join(out), []
    notes = []
    for e in only:
        text = e[1]
        n = data.count(text)
        if n == 1:
            i = data.find(text)
            data = data[:i] + data[i + len(text):]
            continue
        begin = next(l for l in text.split(b"\n") if l.strip()).strip()
        at = data.find(begin)
        if n == 0 and at < 0:
            notes.append(begin.decode("utf-8", "replace").lstrip("# "))
            continue
        line = data.count(b"\n", 0, at if at >= 0 else data.find(text)) + 1
        raise StripError("the lines ngx-ase inserted there were edited since" if n == 0
                         else "the lines ngx-ase inserted there appear twice", line)
    return data, notes


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


def _purpose(plan: Plan, path: str, what: str) -> str:
    return f"{what} #{plan.next_id(path)}"


def ase_conf_name(main: str) -> str:
    """ase.conf next to nginx.conf; ase.NAME.conf next to another main file NAME.conf, so
    that two main files in one directory (nginx.conf, nginx-canary.conf) keep their own."""
    stem = os.path.basename(main)
    stem = stem[:-len(".conf")] if stem.endswith(".conf") else stem
    return ASE_CONF if stem == "nginx" else f"ase.{stem}.conf"


def include_arg(cfg: Config, path: str) -> str:
    """The include argument naming exactly `path`: relative when its full name has no glob
    character, else the absolute path with each of "*?[" in a bracket of its own ("[[]"),
    which glob(3) matches as that one character: nginx reads any of them as a pattern."""
    rel = os.path.relpath(path, cfg.prefix)
    if not has_glob(cfg.full_name(rel)):
        return quote(rel)
    return quote("".join(f"[{c}]" if c in "*?[" else c for c in path))


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
        plan.creates[target] = ((f"# {MARK} file (load_module): written by ngx-ase's scripts/install.sh, "
                                 "removed by its --uninstall\n" + "\n".join(lm_lines) + "\n").encode(), STAGE_LOAD)
    else:
        root = cfg.root
        data = data_of(cfg.main)
        first = next((i for i, d in enumerate(root) if d.block is not None or d.name == "include"), None)
        if first is None:
            raise PlanError(f"{cfg.main} has no block at its top level (no events or http block?)")
        lms = [i for i, d in enumerate(root[:first]) if d.name == "load_module"]
        if lms:
            d = root[lms[-1]]
            off, text = insert_after(data, d, root[lms[-1] + 1].start, _purpose(plan, cfg.main, "load_module"),
                                     lm_lines)
        else:
            d = root[first]
            off, text = insert_before(data, d, _prev_end(root, d, 0), _purpose(plan, cfg.main, "load_module"),
                                      lm_lines)
        plan.insert(cfg.main, off, text, STAGE_LOAD)

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
        ase_conf = os.path.join(cfg.prefix, ase_conf_name(cfg.main))
        line = f"include {include_arg(cfg, ase_conf)};"
        off, text = insert_block_start(data_of(http.path), http, _purpose(plan, http.path, "include ase.conf"),
                                       [line])
        plan.insert(http.path, off, text, STAGE_ENABLE)
        plan.include_check = (http.path, ase_conf)
    plan.creates[ase_conf] = (ase_conf_text(o).encode("utf-8", "surrogateescape"), STAGE_SETTINGS)

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
            off, text = insert_block_start(data_of(d.path), d, _purpose(plan, d.path, f"location {loc}"),
                                           ["ase_request on;", "ase_response on;"])
            plan.insert(d.path, off, text, STAGE_ENABLE)
    return plan
