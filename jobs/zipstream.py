"""A lean streaming ZIP writer and reader-back: no per-entry objects, central directory spooled to disk.

Why not `zipfile`: it keeps a `ZipInfo` per entry, and on a 100,000-coin wallet those objects cost
about three times the run time and stall the event loop with garbage-collector passes (quality.md).
Here every central-directory record is packed into bytes the moment its entry is written and goes
to a nameless temporary file, so memory stays flat whatever the entry count.

Errors: `ZipWriter` raises `OSError` for I/O (opening, reading, writing) and `ValueError` for a name
or size it cannot represent; a failed `add_file`/`add_stream` leaves the archive as it was before
the call. `verify_zip` turns every defect of the archive into a `ZipProblem` and raises only
`OSError` when the archive cannot be opened. `iter_zip_entries` raises `ZipFormatError`.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import BinaryIO

__all__ = [
    "EntryResult",
    "ZipFormatError",
    "ZipProblem",
    "ZipWriter",
    "iter_zip_entries",
    "verify_zip",
]

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
# What the reader needs of the same records; fewer fields unpacked is a faster read-back.
_CENTRAL_READ = struct.Struct("<I4xHH4xIIIHHH8xI")  # sig flags method crc csize usize n x c offset
_LOCAL_READ = struct.Struct("<I10xIIIHH")  # sig crc csize usize name-length extra-length
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
# The hot path packs once what changes per entry: bytes 12-45 of a central record (time, date,
# CRC-32, sizes, name length, four zero fields, attributes, offset). Its first 20 bytes are also
# bytes 10-29 of the local header (the zero extra length included); the rest is constant.
_CENTRAL_VAR = struct.Struct("<HHIIIH8xII")
_pack_central_var = _CENTRAL_VAR.pack

_SIG_LOCAL = 0x04034B50
_LOCAL_SIG = b"PK\x03\x04"
_SIG_CENTRAL = 0x02014B50
_SIG_END = 0x06054B50
_SIG_END64 = 0x06064B50
_SIG_LOCATOR64 = 0x07064B50
_ZIP64_EXTRA_ID = 0x0001

_FLAG_UTF8 = 0x0800  # general-purpose bit 11: the name is UTF-8
_FLAG_ENCRYPTED = 0x0001
_FLAG_DESCRIPTOR = 0x0008
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
_NO_EXTRA = bytes(2)  # the extra-field length of a local header without one

_SMALL = 1 << 20  # files up to this size are read with one os.read
# A read asks for what it expects: os.read allocates its full request first, and a 1 MiB request
# per coin file costs an mmap/munmap pair and page faults (1.7 s instead of 0.4 s for 90,000).
_FIRST_READ = 1 << 16  # for a file of unknown size (mtime given, so no fstat)
_CHUNK = 1 << 20  # streaming chunk for big files, and the read window of the verifier
_FLUSH_AT = 1 << 20  # output and central-directory buffers are written out at this size
_MAX_PROBLEMS = 1000  # a shredded archive must not grow the problem list without bound

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    # A FIFO slipped into a wallet must not block the open forever; no effect on regular files.
    | getattr(os, "O_NONBLOCK", 0)
)
_DOS_MIN = ((1 << 5) | 1, 0)  # 1980-01-01 00:00:00 as (date, time)
_DOS_MAX = ((127 << 9) | (12 << 5) | 31, (23 << 11) | (59 << 5) | 29)  # 2107-12-31 23:59:58


@dataclass(frozen=True, slots=True)
class EntryResult:
    """What one added entry became: CRC-32 and sizes of the original and of the stored data."""

    crc: int
    size: int
    compressed_size: int


# A frozen dataclass's __init__ goes through object.__setattr__ per field, which costs a
# backup of 100,000 coins about 50 ms; the writer fills the slots directly instead.
_new_object = object.__new__
_set_crc = EntryResult.crc.__set__  # type: ignore[attr-defined]
_set_size = EntryResult.size.__set__  # type: ignore[attr-defined]
_set_csize = EntryResult.compressed_size.__set__  # type: ignore[attr-defined]


def _entry_result(crc: int, size: int, compressed_size: int) -> EntryResult:
    result = _new_object(EntryResult)
    _set_crc(result, crc)
    _set_size(result, size)
    _set_csize(result, compressed_size)
    return result


@dataclass(frozen=True, slots=True)
class ZipProblem:
    """One defect found by `verify_zip`; `path` is the entry's name, "" for the archive itself."""

    path: str
    problem: str


class ZipFormatError(ValueError):
    """The file is not a ZIP archive this module can read (no end record, broken directory)."""


def _dos_date_time(mtime: float) -> tuple[int, int]:
    """(date, time) in MS-DOS format, local time, clamped to the range the format can hold."""
    try:
        tm = time.localtime(mtime)
    except (OverflowError, OSError, ValueError):  # a nonsense mtime must not fail a backup
        return _DOS_MAX if mtime > 0 else _DOS_MIN
    year = tm.tm_year
    if year < 1980:
        return _DOS_MIN
    if year > 2107:
        return _DOS_MAX
    return (
        ((year - 1980) << 9) | (tm.tm_mon << 5) | tm.tm_mday,
        (tm.tm_hour << 11) | (tm.tm_min << 5) | (min(tm.tm_sec, 59) >> 1),
    )


def _encode_name(arcname: str) -> bytes:
    name = arcname.encode()  # UTF-8; a lone surrogate (undecodable file name) raises here
    # One cheap test for the common case; coin names never contain "..", "\\" or NUL. The str is
    # tested, not the bytes: these are ASCII, so the answer is the same, and `in` on bytes costs
    # three times as much (it tries its argument as an int first, raising and clearing an error).
    if not 0 < len(name) <= 0xFFFF or arcname[0] == "/" or ".." in arcname or "\\" in arcname or "\x00" in arcname:
        _check_name(name, arcname)
    return name


def _check_name(name: bytes, arcname: str) -> None:
    if (
        not name
        or len(name) > 0xFFFF
        or name[0] == 0x2F  # "/": absolute
        or b"\x00" in name
        or b"\\" in name  # a separator to Windows extractors: "..\\" would escape there
        or name == b".."
        or name.startswith(b"../")
        or b"/../" in name
        or name.endswith(b"/..")
    ):
        raise ValueError(f"unsafe or unrepresentable archive name: {arcname!r}")


def _read_chunks(fd: int, first: bytes) -> Iterator[bytes]:
    yield first
    read = os.read
    while chunk := read(fd, _CHUNK):
        yield chunk


class ZipWriter:
    """Writes a ZIP to an already-open binary file object, entry by entry.

    `out` must be seekable (big entries are patched in place) and positioned where the archive
    starts; open it with `buffering=0` or a large buffer, this writer does its own 1 MiB batching.
    An `int` is taken as a file descriptor. `close()` writes the central directory, which until
    then lives in a nameless temporary file in `spool_dir`; neither `close()` nor `abort()` closes
    or fsyncs `out`, which belongs to the caller. Not thread-safe: one writer, one thread.
    """

    # Thresholds as class attributes so that tests can exercise ZIP64 without writing 4 GiB.
    _ZIP64_LIMIT = 0xFFFFFFFF
    _ZIP64_COUNT_LIMIT = 0xFFFF

    __slots__ = (
        "_out",
        "_base",
        "_offset",
        "_buf",
        "_cd",
        "_spool",
        "_entries",
        "_bytes_in",
        "_dos_cache",
        "_broken",
        "_usable",
        "_limit",
    )

    def __init__(self, out: BinaryIO | int, *, spool_dir: str | os.PathLike[str]) -> None:
        if isinstance(out, int):
            out = open(out, "wb", buffering=0, closefd=False)  # noqa: SIM115 - the caller's fd
        self._out = out
        self._base = out.tell()
        self._offset = self._base
        self._buf = bytearray()
        self._cd = bytearray()
        # O_TMPFILE where the OS has it: the spool never has a name, so a crash leaves nothing.
        self._spool: BinaryIO | None = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115
        self._entries = 0
        self._bytes_in = 0
        self._dos_cache: dict[int, tuple[int, int]] = {}
        self._broken = False
        self._usable = True  # False once closed, aborted or broken: one test on the hot path
        self._limit = self._ZIP64_LIMIT

    def __repr__(self) -> str:
        state = "closed" if self._spool is None else ("broken" if self._broken else "open")
        return f"<ZipWriter {state} entries={self._entries} bytes_in={self._bytes_in}>"

    def __enter__(self) -> ZipWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Leaving the block without close() means the archive is unfinished: drop the spool.
        self.abort()

    @property
    def entries(self) -> int:
        return self._entries

    @property
    def bytes_in(self) -> int:
        """Total uncompressed bytes of all entries added so far."""
        return self._bytes_in

    # -- adding entries ---------------------------------------------------------------------

    def add_bytes(self, arcname: str, data: bytes, *, compress: bool, mtime: float) -> EntryResult:
        if not self._usable:
            self._refuse()
        return self._put(_encode_name(arcname), data, compress, mtime)

    def add_bytes_fast(self, arcname: str, data: bytes, *, compress: bool, mtime: float) -> None:
        """`add_bytes` returning nothing, with a stored entry written inline: a backup's hot path.

        The name is checked as `add_bytes` checks it and the records are the same; what it saves is
        what a coin file cannot afford 100,000 times: the result object and the general path.
        """
        name = arcname.encode()  # as `_encode_name`, inline
        nlen = len(name)
        if not 0 < nlen <= 0xFFFF or arcname[0] == "/" or ".." in arcname or "\\" in arcname or "\x00" in arcname:
            _check_name(name, arcname)
        if not self._usable:
            self._refuse()
        usize = len(data)
        off = self._offset
        limit = self._limit
        if compress or usize >= _FLUSH_AT or usize >= limit or off >= limit:
            self._put(name, data, compress, mtime)
            return
        date, tim = self._dos_cache.get(int(mtime)) or self._dos_miss(mtime)
        var = _pack_central_var(tim, date, zlib.crc32(data), usize, usize, nlen, _FILE_ATTR, off)
        buf = self._buf
        buf += _LOCAL_STORED
        buf += var[:20]
        buf += name
        buf += data
        cd = self._cd
        cd += _CENTRAL_STORED
        cd += var
        cd += name
        self._offset = off + 30 + nlen + usize
        self._entries += 1
        self._bytes_in += usize
        if len(buf) >= _FLUSH_AT:
            self._flush_out()
        if len(cd) >= _FLUSH_AT:
            self._spill_central()

    def add_file(
        self,
        arcname: str,
        path: str | os.PathLike[str],
        *,
        compress: bool,
        mtime: float | None = None,
        on_chunk: Callable[[bytes], None] | None = None,
    ) -> EntryResult:
        """Add a regular file, never following a symbolic link (`OSError` ELOOP for one).

        With `mtime=None` (the default) the file's own mtime is used, and a file of at most 1 MiB
        is read with a single `os.read`; a given `mtime` saves the fstat, and then only files under
        64 KiB are read in one go. Anything bigger is streamed in 1 MiB chunks and its header
        patched afterwards. `on_chunk` sees the original bytes, chunk by chunk.
        """
        if not self._usable:
            self._refuse()
        name = _encode_name(arcname)
        fd = os.open(path, _OPEN_FLAGS)
        try:
            size = -1
            want = _FIRST_READ
            if mtime is None:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
                mtime = st.st_mtime
                size = st.st_size
                if size <= _SMALL:
                    want = size + 1  # one byte more than expected: seeing less proves the end
            data = os.read(fd, want)
            if size <= len(data) < want:  # the whole file (it neither shrank nor grew)
                if on_chunk is not None:
                    on_chunk(data)
                return self._put(name, data, compress, mtime)
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
            # Deflate can grow incompressible data by a hair: reserve ZIP64 room with a margin.
            zip64 = st.st_size + (st.st_size >> 6) + 4096 >= self._limit
            return self._stream(name, _read_chunks(fd, data), compress, mtime, zip64, on_chunk)
        finally:
            os.close(fd)

    def add_stream(
        self, arcname: str, chunks: Iterable[bytes], *, compress: bool, mtime: float
    ) -> EntryResult:
        """Add content of unknown length.

        Up to 1 MiB is gathered in memory and written like `add_bytes`; longer content is streamed
        behind a header without ZIP64 room, so it must stay under 4 GiB (`ValueError` otherwise;
        a manifest would need some 30 million entries to get there).
        """
        if not self._usable:
            self._refuse()
        name = _encode_name(arcname)
        it = iter(chunks)
        head = bytearray()
        for chunk in it:
            head += chunk
            if len(head) > _SMALL:
                return self._stream(name, chain((head,), it), compress, mtime, False, None)
        return self._put(name, head, compress, mtime)

    def add_dir(self, arcname: str, *, mtime: float) -> None:
        if not self._usable:
            self._refuse()
        if not arcname.endswith("/"):
            arcname += "/"
        name = _encode_name(arcname)
        date, tim = self._dos(mtime)
        off = self._offset
        buf = self._buf
        buf += _LOCAL.pack(_SIG_LOCAL, _VERSION, _FLAG_UTF8, _STORED, tim, date, 0, 0, 0, len(name), 0)
        buf += name
        self._offset = off + 30 + len(name)
        self._central(name, _STORED, tim, date, 0, 0, 0, off, _DIR_ATTR)
        self._entries += 1
        if len(buf) >= _FLUSH_AT:
            self._flush_out()

    # -- finishing --------------------------------------------------------------------------

    def close(self, *, comment: bytes = b"") -> int:
        """Write the central directory and end records; return the archive's size in bytes."""
        if not self._usable:
            self._refuse()
        if len(comment) > 0xFFFF:
            raise ValueError("ZIP comment longer than 65535 bytes")
        spool = self._spool
        assert spool is not None
        self._flush_out()
        write = self._write_out
        cd_offset = self._offset
        cd = self._cd
        if spool.tell():
            spool.write(cd)
            cd.clear()
            spool.flush()
            spool.seek(0)
            while chunk := spool.read(_CHUNK):
                write(chunk)
                self._offset += len(chunk)
        else:
            write(cd)
            self._offset += len(cd)
            cd.clear()
        cd_size = self._offset - cd_offset
        count = self._entries
        limit = self._limit
        zip64 = count >= self._ZIP64_COUNT_LIMIT or cd_offset >= limit or cd_size >= limit
        tail = bytearray()
        if zip64:
            end64_offset = self._offset
            tail += _END64.pack(
                _SIG_END64, 44, _MADE_BY_ZIP64, _VERSION_ZIP64, 0, 0, count, count, cd_size, cd_offset
            )
            tail += _LOCATOR64.pack(_SIG_LOCATOR64, 0, end64_offset, 1)
        # Past a limit the classic field holds the all-ones marker that sends readers to ZIP64.
        count16 = count if count < self._ZIP64_COUNT_LIMIT else 0xFFFF
        size32 = cd_size if cd_size < limit else 0xFFFFFFFF
        offset32 = cd_offset if cd_offset < limit else 0xFFFFFFFF
        tail += _END.pack(_SIG_END, 0, 0, count16, count16, size32, offset32, len(comment))
        tail += comment
        write(tail)
        self._offset += len(tail)
        self._out.flush()
        self._drop_spool()
        return self._offset - self._base

    def abort(self) -> None:
        """Forget the archive: drop the spooled central directory; `out` is left to the caller.

        Never raises for the buffers: they are replaced, not cleared, so that even a view someone
        still holds on them cannot turn the abort of a failed archive into a second error.
        """
        self._buf = bytearray()
        self._cd = bytearray()
        self._drop_spool()

    # -- internals --------------------------------------------------------------------------

    def _refuse(self) -> None:
        if self._spool is None:
            raise ValueError("ZipWriter is closed")
        raise ValueError("ZipWriter is broken by an earlier write error; abort it")

    def _drop_spool(self) -> None:
        self._usable = False
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()

    def _dos(self, mtime: float) -> tuple[int, int]:
        # Files of one wallet share a few seconds of mtime, met in directory order, not time
        # order: a small cache of seconds saves most localtime() calls (1.7 us each).
        return self._dos_cache.get(int(mtime)) or self._dos_miss(mtime)

    def _dos_miss(self, mtime: float) -> tuple[int, int]:
        cache = self._dos_cache
        if len(cache) >= 4096:
            cache.clear()
        found = cache[int(mtime)] = _dos_date_time(mtime)
        return found

    def _write_out(self, data: bytes | bytearray | memoryview) -> None:
        try:
            n = self._out.write(data)
            if n is not None and n < len(data):  # a raw file may write short; buffered ones don't
                # Released however the loop ends: a view left alive on `_buf` by a failed write
                # would make abort() raise BufferError and hide that failure.
                with memoryview(data) as view:
                    size = len(view)
                    while n < size:
                        n += self._out.write(view[n:]) or 0
        except BaseException:
            # Whatever part reached the file is unaccounted for: refuse to go on (only a streamed
            # entry, which knows where it started, can cut the file back and recover).
            self._broken = True
            self._usable = False
            raise

    def _flush_out(self) -> None:
        if self._buf:
            self._write_out(self._buf)
            self._buf.clear()

    def _put(self, name: bytes, data: bytes | bytearray, compress: bool, mtime: float) -> EntryResult:
        """Write a whole entry whose content is in memory: header first, no seeking back."""
        usize = len(data)
        crc = zlib.crc32(data)
        if compress:
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = co.compress(data) + co.flush()
            method = _DEFLATED
        else:
            payload = data
            method = _STORED
        csize = len(payload)
        date, tim = self._dos_cache.get(int(mtime)) or self._dos_miss(mtime)
        off = self._offset
        limit = self._limit
        if csize >= _FLUSH_AT or usize >= limit or csize >= limit or off >= limit:
            return self._put_large(name, payload, method, crc, usize, csize, date, tim)
        nlen = len(name)
        var = _pack_central_var(tim, date, crc, csize, usize, nlen, _FILE_ATTR, off)
        buf = self._buf
        buf += _LOCAL_HEAD[method]
        buf += var[:20]
        buf += name
        buf += payload
        cd = self._cd
        cd += _CENTRAL_HEAD[method]
        cd += var
        cd += name
        self._offset = off + 30 + nlen + csize
        self._entries += 1
        self._bytes_in += usize
        if len(buf) >= _FLUSH_AT:
            self._flush_out()
        if len(cd) >= _FLUSH_AT:
            self._spill_central()
        return _entry_result(crc, usize, csize)

    def _put_large(
        self, name: bytes, payload: bytes | bytearray, method: int, crc: int, usize: int,
        csize: int, date: int, tim: int,
    ) -> EntryResult:  # fmt: skip
        """`_put` for big payloads and everything that needs ZIP64 fields."""
        off = self._offset
        nlen = len(name)
        limit = self._limit
        if usize < limit and csize < limit:
            head = _LOCAL.pack(_SIG_LOCAL, _VERSION, _FLAG_UTF8, method, tim, date, crc, csize, usize, nlen, 0)
            head += name
        else:
            head = _LOCAL.pack(
                _SIG_LOCAL, _VERSION_ZIP64, _FLAG_UTF8, method, tim, date, crc,
                0xFFFFFFFF, 0xFFFFFFFF, nlen, 20,
            ) + name + _Z64_SIZES.pack(_ZIP64_EXTRA_ID, 16, usize, csize)  # fmt: skip
        self._buf += head
        if csize < _FLUSH_AT:
            self._buf += payload
            if len(self._buf) >= _FLUSH_AT:
                self._flush_out()
        else:
            self._flush_out()
            self._write_out(payload)
        self._offset = off + len(head) + csize
        self._central(name, method, tim, date, crc, csize, usize, off, _FILE_ATTR)
        self._entries += 1
        self._bytes_in += usize
        return _entry_result(crc, usize, csize)

    def _stream(
        self,
        name: bytes,
        chunks: Iterable[bytes],
        compress: bool,
        mtime: float,
        zip64: bool,
        on_chunk: Callable[[bytes], None] | None,
    ) -> EntryResult:
        """Write an entry of unknown length: header with blanks, data, then patch the header."""
        date, tim = self._dos(mtime)
        method = _DEFLATED if compress else _STORED
        nlen = len(name)
        self._flush_out()
        out = self._out
        write = self._write_out
        off = self._offset
        if zip64:
            head = _LOCAL.pack(
                _SIG_LOCAL, _VERSION_ZIP64, _FLAG_UTF8, method, tim, date, 0,
                0xFFFFFFFF, 0xFFFFFFFF, nlen, 20,
            ) + name + _Z64_SIZES.pack(_ZIP64_EXTRA_ID, 16, 0, 0)  # fmt: skip
        else:
            head = _LOCAL.pack(_SIG_LOCAL, _VERSION, _FLAG_UTF8, method, tim, date, 0, 0, 0, nlen, 0) + name
        crc = usize = csize = 0
        try:
            write(head)
            co = zlib.compressobj(6, zlib.DEFLATED, -15) if compress else None
            crc32 = zlib.crc32
            for chunk in chunks:
                if not chunk:
                    continue
                if on_chunk is not None:
                    on_chunk(chunk)
                crc = crc32(chunk, crc)
                usize += len(chunk)
                if co is not None:
                    chunk = co.compress(chunk)
                    if not chunk:
                        continue
                write(chunk)
                csize += len(chunk)
            if co is not None:
                rest = co.flush()
                write(rest)
                csize += len(rest)
            limit = self._limit
            if not zip64 and (usize >= limit or csize >= limit):
                raise ValueError(
                    f"entry {name.decode()!r} grew past 4 GiB after its header was written"
                )
            end = off + len(head) + csize
            if zip64:
                out.seek(off + 14)
                write(_PATCH_CRC.pack(crc))
                out.seek(off + 30 + nlen + 4)
                write(_PATCH_QQ.pack(usize, csize))
            else:
                out.seek(off + 14)
                write(_PATCH_CRC_SIZES.pack(crc, csize, usize))
            out.seek(end)
        except BaseException:
            self._roll_back(off)
            raise
        self._offset = end
        self._central(name, method, tim, date, crc, csize, usize, off, _FILE_ATTR)
        self._entries += 1
        self._bytes_in += usize
        return _entry_result(crc, usize, csize)

    def _roll_back(self, off: int) -> None:
        """Cut a half-written entry off, so a failed add leaves the archive as it was."""
        try:
            self._out.seek(off)
            self._out.truncate()
        except OSError:
            self._broken = True
            self._usable = False
        else:
            self._offset = off
            self._broken = False
            self._usable = True

    def _central(
        self, name: bytes, method: int, tim: int, date: int, crc: int, csize: int, usize: int,
        off: int, attr: int,
    ) -> None:  # fmt: skip
        cd = self._cd
        limit = self._limit
        if usize < limit and csize < limit and off < limit:
            cd += _CENTRAL.pack(
                _SIG_CENTRAL, _MADE_BY, _VERSION, _FLAG_UTF8, method, tim, date,
                crc, csize, usize, len(name), 0, 0, 0, 0, attr, off,
            )  # fmt: skip
            cd += name
        else:
            # Only the fields that overflow go to the extra, in the order usize, csize, offset;
            # the two sizes travel together, as zipfile and Info-ZIP write them.
            extra = bytearray()
            if usize >= limit or csize >= limit:
                extra += _PATCH_QQ.pack(usize, csize)
                usize = csize = 0xFFFFFFFF
            if off >= limit:
                extra += _U64.pack(off)
                off = 0xFFFFFFFF
            cd += _CENTRAL.pack(
                _SIG_CENTRAL, _MADE_BY_ZIP64, _VERSION_ZIP64, _FLAG_UTF8, method,
                tim, date, crc, csize, usize, len(name), 4 + len(extra), 0, 0, 0, attr, off,
            )  # fmt: skip
            cd += name
            cd += _EXTRA_HEAD.pack(_ZIP64_EXTRA_ID, len(extra))
            cd += extra
        if len(cd) >= _FLUSH_AT:
            self._spill_central()

    def _spill_central(self) -> None:
        assert self._spool is not None
        self._spool.write(self._cd)
        self._cd.clear()


# -- reading back ---------------------------------------------------------------------------


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) < size:  # pread may return short; only EOF ends the loop
        parts = [data]
        got = len(data)
        while got < size and (more := os.pread(fd, size - got, offset + got)):
            parts.append(more)
            got += len(more)
        data = b"".join(parts)
    return data


def _find_end(fd: int, file_size: int) -> tuple[int, int, int, int]:
    """Locate the central directory: (entry count, its offset in the file, its size, shift).

    The offset is where the directory really is. In archives with data prepended (self-extractors)
    every stored offset is short by `shift`, which the caller adds, as zipfile does.
    """
    if file_size < _END.size:
        raise ZipFormatError("file too short to be a ZIP archive")
    tail_len = min(file_size, _END.size + 0xFFFF)
    tail_start = file_size - tail_len
    tail = _pread_exact(fd, tail_len, tail_start)
    found = -1
    pos = tail.rfind(b"PK\x05\x06")
    while pos >= 0:
        if pos + _END.size <= len(tail):
            (comment_len,) = _U16.unpack_from(tail, pos + 20)
            if pos + _END.size + comment_len == len(tail):
                found = pos
                break
            if found < 0:
                found = pos  # a damaged comment length; keep looking for an exact match
        pos = tail.rfind(b"PK\x05\x06", 0, pos)
    if found < 0:
        raise ZipFormatError("end of central directory record not found (truncated or not a ZIP)")
    _, disk, cd_disk, _, count, cd_size, cd_offset, _ = _END.unpack_from(tail, found)
    end_pos = tail_start + found
    cd_end = end_pos
    locator = _pread_exact(fd, _LOCATOR64.size, end_pos - 20) if end_pos >= 20 else b""
    if len(locator) == 20 and _U32.unpack_from(locator)[0] == _SIG_LOCATOR64:
        _, _, end64_offset, _ = _LOCATOR64.unpack(locator)
        # Right before the locator is where it must be; the stored offset is the fallback.
        for where in (end_pos - 20 - _END64.size, end64_offset):
            rec = _pread_exact(fd, _END64.size, where) if 0 <= where < file_size else b""
            if len(rec) == _END64.size and _U32.unpack_from(rec)[0] == _SIG_END64:
                _, _, _, _, disk, cd_disk, _, count, cd_size, cd_offset = _END64.unpack(rec)
                cd_end = where
                break
        else:
            raise ZipFormatError("ZIP64 end of central directory record not found")
    if disk != 0 or cd_disk != 0:
        raise ZipFormatError("multi-volume archives are not supported")
    shift = cd_end - cd_size - cd_offset
    if shift < 0:
        raise ZipFormatError("central directory runs past its end record (truncated archive?)")
    return count, cd_offset + shift, cd_size, shift


def _zip64_extra(
    extra: bytes | memoryview, usize: int, csize: int, off: int
) -> tuple[int, int, int]:
    """Replace the all-ones fields by the values of the ZIP64 extra field, in APPNOTE order."""
    i = 0
    while i + 4 <= len(extra):
        kind, length = _EXTRA_HEAD.unpack_from(extra, i)
        i += 4
        if kind == _ZIP64_EXTRA_ID:
            j, stop = i, min(i + length, len(extra))
            if usize == 0xFFFFFFFF and j + 8 <= stop:
                (usize,) = _U64.unpack_from(extra, j)
                j += 8
            if csize == 0xFFFFFFFF and j + 8 <= stop:
                (csize,) = _U64.unpack_from(extra, j)
                j += 8
            if off == 0xFFFFFFFF and j + 8 <= stop:
                (off,) = _U64.unpack_from(extra, j)
            break
        i += length
    if 0xFFFFFFFF in (usize, csize, off):
        raise ZipFormatError("ZIP64 extra field missing or too short")
    return usize, csize, off


def _walk_central(
    fd: int, cd_offset: int, cd_size: int
) -> Iterator[tuple[bytes, int, int, int, int, int, int, bytes, int]]:
    """Yield (name, flags, method, crc, compressed size, size, local header offset, window, start)
    per entry, reading the directory in 1 MiB windows so that nothing grows with the entry count;
    the record itself is ``window[start:]``, for the verifier to compare bytes without unpacking."""
    end = cd_offset + cd_size
    pos = cd_offset
    win = b""
    win_start = cd_offset
    unpack = _CENTRAL_READ.unpack_from
    while pos < end:
        rel = pos - win_start
        if rel + 46 > len(win):
            win = _pread_exact(fd, min(_CHUNK, end - pos), pos)
            win_start, rel = pos, 0
            if len(win) < 46:
                raise ZipFormatError(f"central directory truncated at offset {pos}")
        sig, flags, method, crc, csize, usize, nlen, xlen, clen, off = unpack(win, rel)
        if sig != _SIG_CENTRAL:
            raise ZipFormatError(f"bad central directory record signature at offset {pos}")
        total = 46 + nlen + xlen + clen
        if pos + total > end:
            raise ZipFormatError(f"central directory record at offset {pos} runs past its end")
        if rel + total > len(win):
            win = _pread_exact(fd, max(total, min(_CHUNK, end - pos)), pos)
            win_start, rel = pos, 0
            if len(win) < total:
                raise ZipFormatError(f"central directory truncated at offset {pos}")
        name = win[rel + 46 : rel + 46 + nlen]
        if usize == 0xFFFFFFFF or csize == 0xFFFFFFFF or off == 0xFFFFFFFF:
            extra = win[rel + 46 + nlen : rel + 46 + nlen + xlen]
            usize, csize, off = _zip64_extra(extra, usize, csize, off)
        yield name, flags, method, crc, csize, usize, off, win, rel
        pos += total


def _decode_name(name: bytes, flags: int) -> str:
    return name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437", "replace")


def iter_zip_entries(path: str | os.PathLike[str]) -> Iterator[tuple[str, int, int]]:
    """(name, uncompressed size, CRC-32) of every entry, straight from the central directory.

    Streams: holds one 1 MiB window, not a list. Raises `ZipFormatError` for a damaged archive.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        _, cd_offset, cd_size, _ = _find_end(fd, os.fstat(fd).st_size)
        for name, flags, _, crc, _, usize, _, _, _ in _walk_central(fd, cd_offset, cd_size):
            yield _decode_name(name, flags), usize, crc
    finally:
        os.close(fd)


def verify_zip(
    path: str | os.PathLike[str],
    *,
    on_entry: Callable[[int], None] | None = None,
    on_entry_every: int = 1,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[int, list[ZipProblem]]:
    """Read every entry back and check it: local header, name, size, CRC-32 (inflating if needed).

    Returns (entries checked, problems). Memory stays flat: the central directory and the data are
    read in 1 MiB windows, big entries are streamed. `on_entry(n)` is called after the n-th entry
    when n is a multiple of `on_entry_every` (a call per entry costs a 100,000-entry check 2%).
    `should_stop()` is asked before every entry; a stop request ends the walk with a problem, so a
    stopped check never reads as a clean one. Only opening the file can raise (`OSError`).
    """
    if on_entry_every < 1:
        raise ValueError("on_entry_every must be at least 1")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return _verify_fd(fd, on_entry, on_entry_every, should_stop)
    finally:
        os.close(fd)


def _verify_fd(
    fd: int,
    on_entry: Callable[[int], None] | None,
    every: int,
    should_stop: Callable[[], bool] | None,
) -> tuple[int, list[ZipProblem]]:
    problems: list[ZipProblem] = []
    checked = 0
    try:
        file_size = os.fstat(fd).st_size
        count, cd_offset, cd_size, shift = _find_end(fd, file_size)
    except (ValueError, OSError, struct.error) as exc:  # ZipFormatError is a ValueError
        return 0, [ZipProblem("", str(exc))]

    win = b""  # a window over the local headers and data, which come in the same order
    win_start = 0
    crc32 = zlib.crc32
    odd_flags = _FLAG_DESCRIPTOR | _FLAG_ENCRYPTED
    try:
        for name_b, flags, method, crc, csize, usize, off, cwin, crel in _walk_central(fd, cd_offset, cd_size):
            if should_stop is not None and should_stop():
                problems.append(ZipProblem("", "verification stopped before the end"))
                return checked, problems
            checked += 1
            off += shift
            rel = off - win_start
            data_end = rel + 30 + len(name_b) + csize
            # The fast path, taken by every stored entry whose records agree byte for byte and
            # whose data is in the window: what `_check_entry` would pass, tested with no copies
            # but the data's. Anything else, deflated entries included, goes the long way.
            if not (
                method == _STORED
                and csize == usize
                and not flags & odd_flags
                and rel >= 0
                and data_end <= len(win)
                and off + data_end - rel <= cd_offset
                and win.startswith(_LOCAL_SIG, rel)
                and win.startswith(cwin[crel + 8 : crel + 30], rel + 6)  # flags … name length
                and win.startswith(_NO_EXTRA, rel + 28)
                and win.startswith(name_b, rel + 30)
                and crc32(win[data_end - csize : data_end]) == crc
            ):
                problem, win, win_start = _check_entry(
                    fd, win, win_start, cd_offset, name_b, flags, method, crc, csize, usize, off
                )
                if problem is not None:
                    problems.append(ZipProblem(_decode_name(name_b, flags), problem))
                    if len(problems) >= _MAX_PROBLEMS:
                        problems.append(ZipProblem("", "too many problems; verification stopped"))
                        return checked, problems
            if on_entry is not None and not checked % every:
                on_entry(checked)
    except ZipFormatError as exc:
        problems.append(ZipProblem("", str(exc)))
    except OSError as exc:
        problems.append(ZipProblem("", f"read error: {exc}"))
    except (ValueError, ArithmeticError, struct.error) as exc:  # a defect is a problem, not a crash
        problems.append(ZipProblem("", f"archive unreadable: {exc}"))
    if checked != count:
        problems.append(
            ZipProblem("", f"central directory holds {checked} entries, its end record says {count}")
        )
    return checked, problems


def _check_entry(
    fd: int, win: bytes, win_start: int, cd_offset: int, name_b: bytes, flags: int, method: int,
    crc: int, csize: int, usize: int, off: int,
) -> tuple[str | None, bytes, int]:  # fmt: skip
    """Every check of one entry, with the window moved as needed: (problem or None, window, its start)."""
    problem = None
    crc32 = zlib.crc32
    rel = off - win_start
    if rel < 0 or rel + 30 + len(name_b) > len(win):
        if off + 30 + len(name_b) <= cd_offset:  # else a garbage offset: do not read it
            win = _pread_exact(fd, _CHUNK, off)
            win_start, rel = off, 0
    if off + 30 + len(name_b) > cd_offset:
        problem = "local header lies past the start of the central directory"
    elif len(win) < rel + 30 + len(name_b):
        problem = "local header lies past the end of the file"
    else:
        sig, lcrc, lcsize, lusize, lnlen, lxlen = _LOCAL_READ.unpack_from(win, rel)
        data_off = off + 30 + lnlen + lxlen
        if sig != _SIG_LOCAL:
            problem = "bad local header signature"
        elif win[rel + 30 : rel + 30 + lnlen] != name_b:
            local_name = _decode_name(win[rel + 30 : rel + 30 + lnlen], flags)
            problem = f"local header name {local_name!r} differs from the central directory"
        elif not flags & _FLAG_DESCRIPTOR and lcrc != crc:
            problem = "local header CRC-32 differs from the central directory"
        elif (
            not flags & _FLAG_DESCRIPTOR
            and lcsize != 0xFFFFFFFF  # ZIP64: the central directory's sizes are the truth
            and (lcsize != csize or lusize != usize)
        ):
            problem = "local header sizes differ from the central directory"
        elif flags & _FLAG_ENCRYPTED:
            problem = "entry is encrypted; cannot check it"
        elif method != _STORED and method != _DEFLATED:
            problem = f"unsupported compression method {method}"
        elif data_off + csize > cd_offset:
            problem = "entry data runs into the central directory (truncated archive?)"
        elif method == _STORED and csize != usize:
            problem = f"stored entry has compressed size {csize} but size {usize}"
        else:
            drel = data_off - win_start
            if csize <= _CHUNK:
                if drel + csize > len(win):
                    win = _pread_exact(fd, max(_CHUNK, data_off + csize - off), off)
                    win_start = off
                    drel = data_off - off
                data = win[drel : drel + csize]
                if len(data) < csize:
                    problem = "entry data truncated"
                elif method == _STORED:
                    got_crc, got_size = crc32(data), csize
                else:
                    got_crc, got_size, problem = _inflate_check((data,), usize)
            else:
                chunks = _pread_chunks(fd, data_off, csize)
                if method == _STORED:
                    got_crc = got_size = 0
                    for chunk in chunks:
                        got_crc = crc32(chunk, got_crc)
                        got_size += len(chunk)
                    if got_size < csize:
                        problem = "entry data truncated"
                else:
                    got_crc, got_size, problem = _inflate_check(chunks, usize)
            if problem is None:
                if got_size != usize:
                    problem = f"size {got_size} differs from the recorded {usize}"
                elif got_crc != crc:
                    problem = f"CRC-32 mismatch: recorded {crc:08x}, data gives {got_crc:08x}"
    return problem, win, win_start


def _pread_chunks(fd: int, offset: int, size: int) -> Iterator[bytes]:
    end = offset + size
    while offset < end:
        chunk = os.pread(fd, min(_CHUNK, end - offset), offset)
        if not chunk:
            return
        yield chunk
        offset += len(chunk)


def _inflate_check(
    chunks: Iterable[bytes | memoryview], usize: int
) -> tuple[int, int, str | None]:
    """Inflate in bounded steps (a tiny entry may claim to hold gigabytes); (crc, size, problem)."""
    d = zlib.decompressobj(-15)
    crc = 0
    size = 0
    try:
        for chunk in chunks:
            data = d.decompress(chunk, _CHUNK)
            while True:
                crc = zlib.crc32(data, crc)
                size += len(data)
                if size > usize:
                    return crc, size, f"inflates to more than the recorded {usize} bytes"
                if not d.unconsumed_tail:
                    break
                data = d.decompress(d.unconsumed_tail, _CHUNK)
            if d.eof:
                break
        if not d.eof:
            return crc, size, "deflate stream truncated"
    except zlib.error as exc:
        return crc, size, f"deflate data corrupt: {exc}"
    return crc, size, None
