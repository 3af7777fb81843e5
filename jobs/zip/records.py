"""The ZIP record layouts, signatures and limits (APPNOTE) the writer packs, and `pread_exact`."""

from __future__ import annotations

import os
import struct

# Record layouts (APPNOTE 4.3.7, 4.3.12, 4.3.14-16), signatures packed as integers.
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # 30 bytes
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
_END = struct.Struct("<IHHHHIIH")  # 22 bytes
_END64 = struct.Struct("<IQHHIIQQQQ")  # 56 bytes
_LOCATOR64 = struct.Struct("<IIQI")  # 20 bytes
_EXTRA_HEAD = struct.Struct("<HH")
_Z64_SIZES = struct.Struct("<HHQQ")  # zip64 extra holding both sizes (local headers)
_PATCH_CRC_SIZES = struct.Struct("<III")
_PATCH_CRC = struct.Struct("<I")
_PATCH_QQ = struct.Struct("<QQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
# The hot path packs once what changes per entry: bytes 12-45 of a central record (time, date,
# CRC-32, sizes, name length, four zero fields, attributes, offset). Its first 20 bytes are also
# bytes 10-29 of the local header (the zero extra length included); the rest is constant.
_CENTRAL_VAR = struct.Struct("<HHIIIH8xII")
_pack_central_var = _CENTRAL_VAR.pack

_SIG_LOCAL = 0x04034B50
_SIG_CENTRAL = 0x02014B50
_SIG_END = 0x06054B50
_SIG_END64 = 0x06064B50
_SIG_LOCATOR64 = 0x07064B50
_ZIP64_EXTRA_ID = 0x0001

_FLAG_UTF8 = 0x0800  # general-purpose bit 11: the name is UTF-8
_STORED = 0
_DEFLATED = 8
_VERSION = 20  # deflate, directories
_VERSION_ZIP64 = 45
_MADE_BY_UNIX = 3 << 8
_MADE_BY = _MADE_BY_UNIX | _VERSION
_MADE_BY_ZIP64 = _MADE_BY_UNIX | _VERSION_ZIP64
_FILE_ATTR = 0o100600 << 16  # regular file, rw------- (backups are private)
_DIR_ATTR = (0o40700 << 16) | 0x10  # directory, rwx------, plus the MS-DOS directory bit
# The constant parts of the records of a small file entry, before the packed `_CENTRAL_VAR` bytes.
_LOCAL_HEAD = {
    method: struct.pack("<IHHH", _SIG_LOCAL, _VERSION, _FLAG_UTF8, method) for method in (_STORED, _DEFLATED)
}
_CENTRAL_HEAD = {
    method: struct.pack("<IHHHH", _SIG_CENTRAL, _MADE_BY, _VERSION, _FLAG_UTF8, method)
    for method in (_STORED, _DEFLATED)
}
_LOCAL_STORED = _LOCAL_HEAD[_STORED]
_CENTRAL_STORED = _CENTRAL_HEAD[_STORED]

_SMALL = 1 << 20  # files up to this size are read with one os.read
# A read asks for what it expects: os.read allocates its full request first, and a 1 MiB request
# per coin file costs an mmap/munmap pair and page faults (1.7 s instead of 0.4 s for 90,000).
_FIRST_READ = 1 << 16  # for a file of unknown size (mtime given, so no fstat)
_CHUNK = 1 << 20  # streaming chunk for big files
_FLUSH_AT = 1 << 20  # output and central-directory buffers are written out at this size

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    # A FIFO slipped into a wallet must not block the open forever; no effect on regular files.
    | getattr(os, "O_NONBLOCK", 0)
)
_DOS_MIN = ((1 << 5) | 1, 0)  # 1980-01-01 00:00:00 as (date, time)
_DOS_MAX = ((127 << 9) | (12 << 5) | 31, (23 << 11) | (59 << 5) | 29)  # 2107-12-31 23:59:58


def pread_exact(fd: int, size: int, offset: int) -> bytes:
    """`size` bytes at `offset`, fewer only at the end of the file (a short `pread` is read on)."""
    data = os.pread(fd, size, offset)
    if len(data) < size:  # pread may return short; only EOF ends the loop
        parts = [data]
        got = len(data)
        while got < size and (more := os.pread(fd, size - got, offset + got)):
            parts.append(more)
            got += len(more)
        data = b"".join(parts)
    return data
