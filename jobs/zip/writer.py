"""A lean streaming ZIP writer: no per-entry objects, central directory spooled to disk (reading back: reader).

Why not `zipfile`: it keeps a `ZipInfo` per entry, and on a 100,000-coin wallet those objects cost
about three times the run time and stall the event loop with garbage-collector passes (quality.md).
Here every central-directory record is packed into bytes the moment its entry is written and goes
to a nameless temporary file, so memory stays flat whatever the entry count.

Errors: `ZipWriter` raises `OSError` for I/O (opening, reading, writing) and `ValueError` for a name
or size it cannot represent; a failed `add_file`/`add_stream` leaves the archive as it was before
the call. Reading an archive back is `jobs.zip.reader`'s (`ZipReader`).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate, chain, repeat
from operator import add, itemgetter
from typing import BinaryIO, cast

from jobs.zip.records import (
    _CENTRAL,
    _CENTRAL_HEAD,
    _CENTRAL_STORED,
    _CHUNK,
    _DEFLATED,
    _DIR_ATTR,
    _DOS_MAX,
    _DOS_MIN,
    _END,
    _END64,
    _EXTRA_HEAD,
    _FILE_ATTR,
    _FIRST_READ,
    _FLAG_UTF8,
    _FLUSH_AT,
    _LOCAL,
    _LOCAL_HEAD,
    _LOCAL_STORED,
    _LOCATOR64,
    _MADE_BY,
    _MADE_BY_ZIP64,
    _OPEN_FLAGS,
    _PATCH_CRC,
    _PATCH_CRC_SIZES,
    _PATCH_QQ,
    _SIG_CENTRAL,
    _SIG_END,
    _SIG_END64,
    _SIG_LOCAL,
    _SIG_LOCATOR64,
    _SMALL,
    _STORED,
    _U64,
    _VERSION,
    _VERSION_ZIP64,
    _Z64_SIZES,
    _ZIP64_EXTRA_ID,
    _pack_central_var,
)

#: zlib's level for deflated entries (its own default); a caller may ask for another
DEFLATE_LEVEL = 6


@dataclass(frozen=True, slots=True)
class EntryResult:
    """What one added entry became: CRC-32 and sizes of the original and of the stored data."""

    crc: int
    size: int
    compressed_size: int


# A frozen dataclass's __init__ goes through object.__setattr__ per field, which costs a
# backup of 100,000 coins about 50 ms; the writer fills the slots directly instead.
_new_object = object.__new__
_set_crc = EntryResult.__dict__["crc"].__set__
_set_size = EntryResult.__dict__["size"].__set__
_set_csize = EntryResult.__dict__["compressed_size"].__set__


def _entry_result(crc: int, size: int, compressed_size: int) -> EntryResult:
    result = _new_object(EntryResult)
    _set_crc(result, crc)
    _set_size(result, size)
    _set_csize(result, compressed_size)
    return result


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


# The batch path's field getters, C-level callables for `map` (no Python frame per entry).
_plus_30 = (30).__add__  # a stored entry's local header is 30 bytes before its name
_first = itemgetter(0)
_second = itemgetter(1)
_first_20 = itemgetter(slice(0, 20))  # the packed fields a local header shares with its central record


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

    def add_stored_batch(self, names: list[str], datas: list[bytes], mtimes: list[float]) -> None:
        """Many small stored entries at once (the i-th of each list is one entry): a backup's hot path.

        The same records as `add_bytes(…, compress=False)` entry by entry. A batch of plain names
        and small data (the common case) is written with no Python step per entry: every field is
        one C-level `map` over the batch (encode, CRC-32, DOS time, offsets, pack) and the records
        are two joins. Anything else (a name the checks must look at, a big entry, a time not yet
        converted, the ZIP64 threshold near) takes `_add_stored_each`, which checks entry by entry.
        """
        if not self._usable:
            self._refuse()
        if len(names) != len(datas) or len(names) != len(mtimes):
            raise ValueError("names, datas and mtimes differ in length")
        if not names:
            return
        joined = "\n".join(names)
        if (
            not all(names)
            or "\\" in joined
            or "\x00" in joined
            or ".." in joined
            or "\n/" in joined
            or joined[0] == "/"
        ):
            self._add_stored_each(names, datas, mtimes)
            return
        try:
            names_b = list(map(str.encode, names))
        except UnicodeEncodeError:  # the entries before the bad name are written, as one by one
            self._add_stored_each(names, datas, mtimes)
            return
        nlens = list(map(len, names_b))
        usizes = list(map(len, datas))
        off = self._offset
        ends = list(accumulate(map(_plus_30, map(add, nlens, usizes)), initial=off))
        times = list(map(self._dos_cache.get, map(int, mtimes)))
        if max(nlens) > 0xFFFF or max(usizes) >= _FLUSH_AT or ends[-1] >= self._limit:
            self._add_stored_each(names, datas, mtimes)
            return
        if None in times:  # seconds not converted yet: a wallet's files mostly differ in time
            miss = self._dos_miss
            times = [t or miss(m) for t, m in zip(times, mtimes)]
        dos = cast("list[tuple[int, int]]", times)  # (date, time) of each entry
        var = list(
            map(
                _pack_central_var,
                map(_second, dos),
                map(_first, dos),
                map(zlib.crc32, datas),
                usizes,
                usizes,
                nlens,
                repeat(_FILE_ATTR),
                ends,  # the first len(names) of them: each entry's own offset
            )
        )
        self._buf += b"".join(chain.from_iterable(zip(repeat(_LOCAL_STORED), map(_first_20, var), names_b, datas)))
        self._cd += b"".join(chain.from_iterable(zip(repeat(_CENTRAL_STORED), var, names_b)))
        self._offset = ends[-1]
        self._entries += len(names)
        self._bytes_in += sum(usizes)
        if len(self._buf) >= _FLUSH_AT:
            self._flush_out()
        if len(self._cd) >= _FLUSH_AT:
            self._spill_central()

    def _add_stored_each(self, names: list[str], datas: list[bytes], mtimes: list[float]) -> None:
        """`add_stored_batch` entry by entry: each name checked, big entries and misses the general way."""
        if not self._usable:
            self._refuse()
        buf, cd = self._buf, self._cd
        off, limit = self._offset, self._limit
        dos_get, dos_miss = self._dos_cache.get, self._dos_miss
        crc32, pack = zlib.crc32, _pack_central_var
        local_head, central_head, attr = _LOCAL_STORED, _CENTRAL_STORED, _FILE_ATTR
        added = bytes_in = 0
        try:
            for arcname, data, mtime in zip(names, datas, mtimes, strict=True):
                name = arcname.encode()
                nlen = len(name)
                if (
                    not 0 < nlen <= 0xFFFF
                    or arcname[0] == "/"
                    or ".." in arcname
                    or "\\" in arcname
                    or "\x00" in arcname
                ):
                    _check_name(name, arcname)
                usize = len(data)
                if usize >= _FLUSH_AT or usize >= limit or off >= limit:
                    self._offset = off
                    self._put(name, data, False, mtime)
                    off = self._offset
                    continue
                date, tim = dos_get(int(mtime)) or dos_miss(mtime)
                var = pack(tim, date, crc32(data), usize, usize, nlen, attr, off)
                buf += local_head
                buf += var[:20]
                buf += name
                buf += data
                cd += central_head
                cd += var
                cd += name
                off += 30 + nlen + usize
                added += 1
                bytes_in += usize
        finally:
            self._offset = off
            self._entries += added
            self._bytes_in += bytes_in
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
        self, arcname: str, chunks: Iterable[bytes], *, compress: bool, mtime: float, level: int = DEFLATE_LEVEL
    ) -> EntryResult:
        """Add content of unknown length (deflated at `level` when `compress`).

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
                return self._stream(name, chain((head,), it), compress, mtime, False, None, level)
        return self._put(name, head, compress, mtime, level)

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
            tail += _END64.pack(_SIG_END64, 44, _MADE_BY_ZIP64, _VERSION_ZIP64, 0, 0, count, count, cd_size, cd_offset)
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

    def _put(
        self, name: bytes, data: bytes | bytearray, compress: bool, mtime: float, level: int = DEFLATE_LEVEL
    ) -> EntryResult:
        """Write a whole entry whose content is in memory: header first, no seeking back."""
        usize = len(data)
        crc = zlib.crc32(data)
        if compress:
            co = zlib.compressobj(level, zlib.DEFLATED, -15)
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
        level: int = DEFLATE_LEVEL,
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
            co = zlib.compressobj(level, zlib.DEFLATED, -15) if compress else None
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
                raise ValueError(f"entry {name.decode()!r} grew past 4 GiB after its header was written")
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
