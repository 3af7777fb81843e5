"""Durable file changes: atomic writes (temporary name, fsync, rename, fsync the directory) and renames that never replace."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write `data` to `path` so that a reader or a crash sees either the old file or the new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def occupied(source: Path, target: Path) -> bool:
    """Anything at `target` (file, folder, link, even a broken one) — except `source` itself, which a
    case-insensitive file system reports there when only the case of the name changes."""
    try:
        there = os.lstat(target)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: never risk replacing it
    try:
        return not os.path.samestat(there, os.lstat(source))
    except OSError:
        return True


# -- renaming a folder without ever replacing what is at the target ------------------------------------

AT_FDCWD = -100
RENAME_NOREPLACE = 1  # linux/fs.h
RENAME_EXCL = 0x4  # macOS sys/stdio.h, for renamex_np


def _load_noreplace() -> Any:
    """Linux renameat2 (glibc ≥ 2.28) or macOS renamex_np, as a ctypes function; None when neither exists."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux"):
        func = getattr(libc, "renameat2", None)
        if func is not None:
            func.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
            func.restype = ctypes.c_int
            return lambda src, dst: func(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE)
    elif sys.platform == "darwin":
        func = getattr(libc, "renamex_np", None)
        if func is not None:
            func.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint)
            func.restype = ctypes.c_int
            return lambda src, dst: func(src, dst, RENAME_EXCL)
    return None


_noreplace = _load_noreplace()


def rename_noreplace(source: Path, target: Path) -> None:
    """Rename `source` to `target`, refusing (FileExistsError) whatever is at `target`.

    `os.rename` would silently replace an empty folder there (POSIX rename(2)). The kernel's
    no-replace rename makes the check and the rename one step. Where it is missing (no renameat2 in
    the C library, or a file system that answers EINVAL/ENOSYS/ENOTSUP to the flag, e.g. some network
    and FUSE mounts), it falls back to check-then-rename: every rename in this server holds the
    registry lock, so only another program could slip in between. On Windows, `os.rename` already
    refuses an existing target.
    """
    if _noreplace is not None:
        if _noreplace(os.fsencode(source), os.fsencode(target)) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST and not occupied(source, target):
            pass  # only the case of the name changes on a case-insensitive file system: plain rename below
        elif code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(source), None, str(target))
    if occupied(source, target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(source), None, str(target))
    os.rename(source, target)
