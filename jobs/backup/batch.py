"""The walk's batch path: a folder's plain files read, hashed and described with C-level maps.

A wallet is mostly folders of small coin files, and per file the walk's Python steps cost more than
the four system calls it needs (open, fstat, read, close). Here each step is one `map` over the
batch (up to 256 names; the files themselves are opened 8 at a time): no Python frame, no bytecode
per file, only the C functions themselves. `plain_names` and `read_files` answer None for a batch
that is not plainly regular, and the walk then takes its file-by-file path, which tells each file's
case apart; so the batch path only has to be right for the common case and to recognise everything
else.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import deque
from functools import partial
from itertools import repeat
from json.encoder import encode_basestring_ascii
from operator import attrgetter, methodcaller

#: how the walk opens a file: no link followed, no FIFO waited on
OPEN_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
#: source files a batch holds open at once (each step is still one `map` over them)
FILES_OPEN_AT_ONCE = 8

_size_of = attrgetter("st_size")
_mode_of = attrgetter("st_mode")
_mtime_of = attrgetter("st_mtime")
_plus_1 = (1).__add__
_EMPTY_SHA256 = hashlib.sha256()
_copy = type(_EMPTY_SHA256).copy
_update = type(_EMPTY_SHA256).update
_hexdigest = type(_EMPTY_SHA256).hexdigest
_is_file = methodcaller("is_file", follow_symlinks=False)
_name_of = attrgetter("name")
_file_line = ',\n{{"path":{},"type":"file","size":{},"sha256":"{}"}}'.format


def plain_names(entries: list[os.DirEntry[str]]) -> list[str] | None:
    """The names of `entries` when all are regular files (by the folder's own listing) named
    `*.bin` in plain ASCII without a backslash; else None."""
    try:
        if not all(map(_is_file, entries)):
            return None
    except OSError:  # a file system without types in its listing, and the lstat failed
        return None
    names = list(map(_name_of, entries))
    joined = "".join(names)
    if not joined.isascii() or "\\" in joined or not all(map(str.endswith, names, repeat(".bin"))):
        return None
    return names


def read_files(dir_fd: int, names: list[str], limit: int) -> tuple[list[bytes], list[float]] | None:
    """(contents, mtimes) of the regular files `names` in the folder `dir_fd`, each at most `limit`
    bytes and read whole; None when any of them is not so (a link, a FIFO, too big, unreadable,
    changed size while read): the walk then looks at each in turn.

    The same calls as the walk's per-file path: no link followed (O_NOFOLLOW), no FIFO waited on
    (O_NONBLOCK), one read of one byte more than the size (a short answer proves the end). At most
    `FILES_OPEN_AT_ONCE` are open at a time (the server's open-file budget counts them).
    """
    opener = partial(os.open, flags=OPEN_FILE_FLAGS, dir_fd=dir_fd)
    datas: list[bytes] = []
    mtimes: list[float] = []
    for at in range(0, len(names), FILES_OPEN_AT_ONCE):
        fds: list[int] = []
        try:
            # `extend` keeps what was opened before a failing open, so that all of it is closed.
            fds.extend(map(opener, names[at : at + FILES_OPEN_AT_ONCE]))
            stats = list(map(os.fstat, fds))
            sizes = list(map(_size_of, stats))
            if max(sizes) > limit or not all(map(stat.S_ISREG, map(_mode_of, stats))):
                return None
            got = list(map(os.read, fds, map(_plus_1, sizes)))
        except OSError:
            return None
        finally:
            _close_all(fds)
        if list(map(len, got)) != sizes:
            return None
        datas += got
        mtimes += map(_mtime_of, stats)
    return datas, mtimes


def _close_all(fds: list[int]) -> None:
    """Close every descriptor even when one close fails (Linux frees the descriptor all the same)."""
    left = iter(fds)
    while True:
        try:
            deque(map(os.close, left), maxlen=0)
            return
        except OSError:
            continue


def manifest_lines(arcs: list[str], datas: list[bytes]) -> bytes:
    """The manifest's lines of these files, each as the walk's per-file path writes it.

    Each SHA-256 starts as a copy of an empty one: `hashlib.sha256()` looks the algorithm up in
    OpenSSL 3 at every call, a third of the cost of hashing a coin file.
    """
    hashes = list(map(_copy, repeat(_EMPTY_SHA256, len(datas))))
    deque(map(_update, hashes, datas), maxlen=0)
    digests = map(_hexdigest, hashes)
    return "".join(map(_file_line, map(encode_basestring_ascii, arcs), map(len, datas), digests)).encode()
