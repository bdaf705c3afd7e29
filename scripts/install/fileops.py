"""The few ways the installer changes a file, each leaving something recognisable when the
process dies half-way (SIGKILL, OOM, power loss aside from what fsync covers):

- a new file renamed into place (write_new_inode): a crash leaves either the old file, the
  new one, or the old one plus a `.NAME.ngx-ase-tmp` beside it (tmp_name), which the journal
  knows to remove;
- a rewrite in place (write_in_place), for files with several hard links or extended
  attributes (POSIX ACLs, SELinux labels) that a new inode would lose: a crash leaves the
  new bytes up to some offset and the old ones after it (is_partial_write recognises that);
- an unlink.

Test hook (tests only, documented in scripts/test-install.sh): when the environment has
NGX_ASE_INSTALL_TEST_KILL_AFTER=N, the process sends itself SIGKILL right after its Nth file
change (each of the steps above counts, so does writing half of an in-place rewrite), so
that a test can interrupt it at every point where it changes a file."""

from __future__ import annotations

import errno
import os
import shutil
import signal
from typing import List, Optional

_KILL_AFTER = int(os.environ.get("NGX_ASE_INSTALL_TEST_KILL_AFTER", "0") or 0)
_changes = 0


def changed() -> None:
    """Called after every change to a file; the test hook's kill point."""
    global _changes
    _changes += 1
    if _KILL_AFTER and _changes >= _KILL_AFTER:
        os.kill(os.getpid(), signal.SIGKILL)


def tmp_name(path: str) -> str:
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.ngx-ase-tmp")


def read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def has_xattrs(path: str) -> bool:
    try:
        return bool(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return False


def needs_in_place(path: str) -> bool:
    """A new inode would break its hard links or drop its ACLs/labels."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return st.st_nlink > 1 or has_xattrs(path)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_new_inode(path: str, data: bytes, mode: int, like: Optional[os.stat_result] = None) -> None:
    """Writes data to a new file and renames it over path: a process that has path open or
    mapped (nginx and its modules) keeps the old inode."""
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        changed()
        os.chmod(tmp, (like.st_mode & 0o7777) if like else mode)
        if like and os.geteuid() == 0:
            os.chown(tmp, like.st_uid, like.st_gid)
        os.replace(tmp, path)
        _fsync_dir(path)
        changed()
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_in_place(path: str, data: bytes) -> None:
    """Overwrites path's bytes in the same inode (links, owner, mode, xattrs stay)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        half = len(data) // 2
        os.pwrite(fd, data[:half], 0)
        changed()
        os.pwrite(fd, data[half:], half)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)
    changed()


def is_partial_write(cur: bytes, old: bytes, new: bytes) -> bool:
    """cur is what an interrupted write_in_place of new over old can leave: new's bytes up to
    some offset, then old's (including old's tail when new was written but not truncated)."""
    p = 0
    limit = min(len(cur), len(new))
    while p < limit and cur[p] == new[p]:
        p += 1
    return cur[p:] == old[p:] and len(cur) == max(len(old), p)


def remove(path: str) -> None:
    os.unlink(path)
    _fsync_dir(path)
    changed()


def make_dirs(path: str) -> List[str]:
    """Creates path and its missing parents; returns the ones it created, outermost first."""
    missing = []
    p = os.path.abspath(path)
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    created = []
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            continue
        created.append(d)
        changed()
    return created


def remove_empty_dirs(dirs: List[str]) -> None:
    """Removes the directories it created, innermost first, when they are empty."""
    for d in reversed(dirs):
        try:
            os.rmdir(d)
            changed()
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise


def copy_backup(src: str, dst: str) -> None:
    """A backup copy with mode, times and xattrs, flushed to disk before the journal names it."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(src, dst, follow_symlinks=True)
    with open(dst, "rb") as f:
        os.fsync(f.fileno())
