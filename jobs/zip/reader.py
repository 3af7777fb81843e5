"""Reading a ZIP archive as a stream: its end records, its central directory record by record, its entries in file order.

Nothing per entry is kept: the central directory is read in 1 MiB windows and each record is handed
on as a tuple (`Record`), then dropped; the entries' data comes from one sequential read of the file.
Every structural fault is an `ArchiveError` naming the entry where it was found: end records that
do not close the file exactly, a directory whose sizes or count disagree with its end record, entries
that overlap or run into the directory, a local header that disagrees with its directory record.
A damaged entry whose structure is sound (bad CRC-32, bad deflate data) is not structural: the data
pass reports it per entry and goes on, so that a verification can name every damaged file.

Entries must lie in the file in the order the directory lists them, as every archiver writes them;
an archive whose directory is shuffled is refused ("out of file order") rather than read with seeks.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from jobs.zip.records import pread_exact

_END = struct.Struct("<IHHHHIIH")  # 22 bytes
_END64 = struct.Struct("<IQHHIIQQQQ")  # 56 bytes
_LOCATOR64 = struct.Struct("<IIQI")  # 20 bytes
# sig, made-by, needed, flags, method, time, date, crc, csize, usize, nlen, xlen, clen, disk, iattr, xattr, offset
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # 30 bytes
# What the hot loop of `entries()` needs of the same records: fewer fields unpacked, time and date
# as one 32-bit value (the record's (date << 16) | time).
_CENTRAL_HOT = struct.Struct("<I4xHHIIIIHHH4xII")  # sig flags method dos crc csize usize n x c attr offset
_LOCAL_HOT = struct.Struct("<I2xHH4xIIIHH")  # sig flags method crc csize usize name-length extra-length
# The fast lane's view of a directory record whose first 12 bytes it has compared: dos crc csize usize
# name-length, extra and comment lengths as one value (zero when both are), attributes, offset.
_CENTRAL_PLAIN = struct.Struct("<12xIIIIHI4xII")
_EXTRA_HEAD = struct.Struct("<HH")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_SIG_CENTRAL, _SIG_LOCAL, _SIG_END, _SIG_END64, _SIG_LOCATOR64 = (
    0x02014B50, 0x04034B50, 0x06054B50, 0x06064B50, 0x07064B50,
)  # fmt: skip
_DESCRIPTOR_SIG = b"PK\x07\x08"
_LOCAL_SIG = b"PK\x03\x04"
_ZIP64_EXTRA = 0x0001
_ONES32 = 0xFFFFFFFF

FLAG_ENCRYPTED = 0x0001
FLAG_DESCRIPTOR = 0x0008
FLAG_UTF8 = 0x0800
STORED, DEFLATED = 0, 8
#: bytes 0-11 of this server's directory record of a stored file (jobs/zip/records.py writes them)
_PLAIN_PREFIX = struct.pack("<IHHHH", _SIG_CENTRAL, 3 << 8 | 20, 20, FLAG_UTF8, STORED)
#: the read window; entries up to this size (stored and inflated) come whole, bigger ones in chunks
CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
#: a record made as a plain tuple of its class: NamedTuple's own __new__ is a Python function
_new = tuple.__new__


class ArchiveError(ValueError):
    """The archive's structure is broken; `path` is the entry where it was found ("" for the archive)."""

    def __init__(self, problem: str, path: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path


class EntryDamaged(ValueError):
    """Raised by a big entry's chunk iterator after its last chunk when the data is not what was recorded."""


class Record(NamedTuple):
    """One central-directory record, with ZIP64 values resolved and the offset made absolute."""

    name: bytes
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    offset: int  # of the local header, in the file
    attr: int  # external attributes (unix mode in the high 16 bits)
    dos: int  # (date << 16) | time


#: what `ZipReader.rows()` yields: a record's fields (name, flags, method, crc, csize, usize, offset,
#: attr, dos), then the data (bytes, chunks or None) and the problem (None or why the data is damaged)
Row = tuple[bytes, int, int, int, int, int, int, int, int, "bytes | Iterator[bytes] | None", "str | None"]


def decode_name(record: Record) -> str:
    """The entry's name: UTF-8 when flagged, else code page 437 (APPNOTE D.1)."""
    return record.name.decode("utf-8" if record.flags & FLAG_UTF8 else "cp437", "replace")


def _refuse_place(name: bytes, off: int, shift: int, low: int) -> None:
    """Why an entry at `off` cannot be where it is: before the archive, overlapping the entry before
    it (or out of file order, whose end is `low`), or running into the central directory."""
    path = name.decode("utf-8", "replace")
    if off < low:
        if off < shift:
            raise ArchiveError("local header offset lies before the archive's start", path)
        raise ArchiveError("entry overlaps the one before it, or is out of file order", path)
    raise ArchiveError("entry runs into the central directory (truncated archive?)", path)


class ZipReader:
    """One archive opened for reading; `records()` streams the directory, `entries()` the data."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.fd = os.open(path, _OPEN_FLAGS)
        try:
            self.file_size = os.fstat(self.fd).st_size
            self.count, self.cd_offset, self.cd_size, self.shift = self._end_records()
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ZipReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _end_records(self) -> tuple[int, int, int, int]:
        """(entry count, directory offset in the file, directory size, bytes prepended to the archive)."""
        size = self.file_size
        if size < _END.size:
            raise ArchiveError("file too short to be a ZIP archive")
        tail_len = min(size, _END.size + 0xFFFF)
        tail = pread_exact(self.fd, tail_len, size - tail_len)
        # The end record is the one whose comment ends exactly at the end of the file: a cut file has none.
        pos = tail.rfind(b"PK\x05\x06", 0, len(tail) - _END.size + 4)
        while pos >= 0 and pos + _END.size + int.from_bytes(tail[pos + 20 : pos + 22], "little") != len(tail):
            pos = tail.rfind(b"PK\x05\x06", 0, pos)
        if pos < 0:
            raise ArchiveError("end of central directory record not found (truncated or not a ZIP archive)")
        _, disk, cd_disk, here, count, cd_size, cd_offset, _ = _END.unpack_from(tail, pos)
        end_pos = size - tail_len + pos
        cd_end = end_pos
        if disk != 0 or cd_disk != 0:
            raise ArchiveError("multi-volume archives are not supported")
        if here != count:
            raise ArchiveError(f"end record counts {here} entries on this disk but {count} in all")
        locator = pread_exact(self.fd, _LOCATOR64.size, end_pos - _LOCATOR64.size) if end_pos >= 20 else b""
        if len(locator) == _LOCATOR64.size and locator.startswith(b"PK\x06\x07"):
            _, disk64, _, disks = _LOCATOR64.unpack(locator)
            where = end_pos - _LOCATOR64.size - _END64.size
            record = pread_exact(self.fd, _END64.size, where) if where >= 0 else b""
            if len(record) < _END64.size or not record.startswith(b"PK\x06\x06"):
                raise ArchiveError("ZIP64 end of central directory record not found before its locator")
            _, _, _, _, disk, cd_disk, here, count64, cd_size64, cd_offset64 = _END64.unpack(record)
            if disk != 0 or cd_disk != 0 or disk64 != 0 or disks > 1:
                raise ArchiveError("multi-volume archives are not supported")
            if here != count64:
                raise ArchiveError(f"ZIP64 end record counts {here} entries on this disk but {count64} in all")
            for small, big, ones in (
                (count, count64, 0xFFFF),
                (cd_size, cd_size64, _ONES32),
                (cd_offset, cd_offset64, _ONES32),
            ):
                if small not in (big, ones, big & ones):
                    raise ArchiveError("the end record and the ZIP64 end record disagree")
            count, cd_size, cd_offset, cd_end = count64, cd_size64, cd_offset64, where
        elif 0xFFFF == count or _ONES32 in (cd_size, cd_offset):
            raise ArchiveError("end record needs ZIP64 end records, and there are none (truncated archive?)")
        shift = cd_end - cd_size - cd_offset
        if shift < 0:
            raise ArchiveError("central directory runs past its end record (truncated archive?)")
        if count > cd_size // _CENTRAL.size:
            raise ArchiveError(f"end record claims {count} entries, more than its directory of {cd_size} bytes holds")
        return count, cd_offset + shift, cd_size, shift

    def records(self) -> Iterator[Record]:
        """The central directory, record by record, each checked against its end record and the one before."""
        fd, shift, cd_offset = self.fd, self.shift, self.cd_offset
        end = cd_offset + self.cd_size
        unpack = _CENTRAL.unpack_from
        pos = cd_offset
        win = b""
        win_start = pos
        seen = 0
        low = 0  # where the next entry's local header may start at the earliest
        while pos < end:
            rel = pos - win_start
            if rel + 46 > len(win):
                win, win_start, rel = pread_exact(fd, min(CHUNK, end - pos), pos), pos, 0
                if len(win) < 46:
                    raise ArchiveError(f"central directory truncated at offset {pos}")
            (sig, _, _, flags, method, time, date, crc, csize, usize, nlen, xlen, clen,
             _, _, attr, off) = unpack(win, rel)  # fmt: skip
            if sig != _SIG_CENTRAL:
                raise ArchiveError(f"bad central directory record signature at offset {pos}")
            total = 46 + nlen + xlen + clen
            if pos + total > end:
                raise ArchiveError(f"central directory record at offset {pos} runs past the directory's end")
            if rel + total > len(win):
                win, win_start, rel = pread_exact(fd, max(total, min(CHUNK, end - pos)), pos), pos, 0
            name = win[rel + 46 : rel + 46 + nlen]
            if _ONES32 in (usize, csize, off):
                usize, csize, off = _zip64_values(win[rel + 46 + nlen : rel + 46 + nlen + xlen], usize, csize, off)
            seen += 1
            if seen > self.count:
                raise ArchiveError(f"central directory holds more entries than the {self.count} its end record claims")
            off += shift
            entry_end = off + 30 + nlen + csize
            if off < low or entry_end > cd_offset:
                _refuse_place(name, off, shift, low)
            low = entry_end
            yield _new(Record, (name, flags, method, crc, csize, usize, off, attr, (date << 16) | time))
            pos += total
        if seen != self.count:
            raise ArchiveError(f"central directory holds {seen} entries, its end record says {self.count}")

    def last_record(self) -> Record | None:
        """The directory's last record, read from its end (no walk); None when it cannot be told there.

        A shortcut for finding an entry a writer puts last; `records()` checks the directory whole."""
        end = self.cd_offset + self.cd_size
        tail = pread_exact(self.fd, min(self.cd_size, 1024), end - min(self.cd_size, 1024))
        pos = tail.rfind(b"PK\x01\x02")
        while pos >= 0:
            if pos + 46 <= len(tail):
                (_, _, _, flags, method, time, date, crc, csize, usize, nlen, xlen, clen,
                 _, _, attr, off) = _CENTRAL.unpack_from(tail, pos)  # fmt: skip
                if pos + 46 + nlen + xlen + clen == len(tail):
                    name = tail[pos + 46 : pos + 46 + nlen]
                    try:
                        if _ONES32 in (usize, csize, off):
                            usize, csize, off = _zip64_values(
                                tail[pos + 46 + nlen : pos + 46 + nlen + xlen], usize, csize, off
                            )
                    except ArchiveError:
                        return None
                    return Record(name, flags, method, crc, csize, usize, off + self.shift, attr, (date << 16) | time)
            pos = tail.rfind(b"PK\x01\x02", 0, pos)
        return None

    def entries(self) -> Iterator[tuple[Record, bytes | Iterator[bytes] | None, str | None]]:
        """(record, data, problem) of every entry, in file order, from one sequential read.

        `data` is the entry's bytes (inflated) when it is at most CHUNK, else an iterator of chunks
        that raises `EntryDamaged` after the last one if the data is not what was recorded; it must be
        consumed before the next entry is asked for. `problem` is None, or why the data is damaged
        (then `data` is None). A broken structure raises `ArchiveError`."""
        for row in self.rows():
            yield _new(Record, row[:9]), row[9], row[10]

    def rows(self) -> Iterator[Row]:
        """`entries()` as one flat tuple per entry: the record's fields, then data and problem.

        The hot loop of restore and verify: no record object is made for an entry that is plainly
        sound, and its reader takes the fields it needs by unpacking. The directory is walked here as
        `records()` walks it, with the same checks in the same order (one loop for both reads).
        """
        fd, shift, cd_offset, count = self.fd, self.shift, self.cd_offset, self.count
        cd_end = cd_offset + self.cd_size
        unpack_central = _CENTRAL_HOT.unpack_from
        unpack_plain = _CENTRAL_PLAIN.unpack_from
        unpack_local = _LOCAL_HOT.unpack_from
        crc32 = zlib.crc32
        new = tuple.__new__
        cpos = cd_offset
        cwin = b""
        cwin_start = cpos
        cwlen = seen = 0
        low = 0  # where the next entry's local header may start at the earliest
        win = b""
        win_start = wlen = 0
        pos = shift  # the end of the entry before: the next one starts exactly there
        # Bytes 0-11 of a directory record (signature, versions, flags, method) known to open a plain
        # entry: stored, neither encrypted nor followed by a data descriptor. Learnt from the last such
        # record the full path passed; this server's own until then.
        plain, plain_flags = _PLAIN_PREFIX, FLAG_UTF8
        while True:
            # -- the fast lane: plain entries in a row, each with its directory record and its local
            # header and data whole in the windows. Its conditions imply every check of the full path
            # below, which takes any entry that fails one of them (nothing consumed), and the next.
            # Positions are kept relative to the windows: `crel` of the next directory record, `rel`
            # of the next local header (where the entry before ended); `base` is the offset a record
            # gives for the data window's start. No lane where offsets reach 4 GiB (ZIP64 values).
            crel = cpos - cwin_start
            rel = pos - win_start
            base = win_start - shift
            last = cwlen - 46 if base + wlen < _ONES32 else -1  # the last place a whole record may start
            while crel <= last and cwin.startswith(plain, crel):
                dos, crc, csize, usize, nlen, extra_comment, attr, off = unpack_plain(cwin, crel)
                name_end = crel + 46 + nlen
                data_at = rel + 30 + nlen
                data_end = data_at + csize
                if (
                    off - base != rel or csize != usize or extra_comment or name_end > cwlen or data_end > wlen
                    or seen == count
                ):  # fmt: skip
                    break
                name = cwin[crel + 46 : name_end]
                # The local header: the record's bytes 6-32 (versions, flags, method, time, date,
                # CRC-32, sizes, name length, and a zero extra length), then the same name.
                if win[rel:data_at] != _LOCAL_SIG + cwin[crel + 6 : crel + 32] + name:
                    break
                data = win[data_at:data_end]
                if crc32(data) != crc:
                    break
                seen += 1
                crel = name_end
                rel = data_end
                yield name, plain_flags, STORED, crc, csize, usize, off + shift, attr, dos, data, None
            cpos = cwin_start + crel
            if pos != win_start + rel:
                pos = low = win_start + rel
            if cpos >= cd_end:
                break
            # -- the next directory record, checked as records() checks it
            crel = cpos - cwin_start
            if crel + 46 > cwlen:
                cwin, cwin_start, crel = pread_exact(fd, min(CHUNK, cd_end - cpos), cpos), cpos, 0
                cwlen = len(cwin)
                if cwlen < 46:
                    raise ArchiveError(f"central directory truncated at offset {cpos}")
            sig, flags, method, dos, crc, csize, usize, nlen, xlen, clen, attr, off = unpack_central(cwin, crel)
            if sig != _SIG_CENTRAL:
                raise ArchiveError(f"bad central directory record signature at offset {cpos}")
            total = 46 + nlen + xlen + clen
            if cpos + total > cd_end:
                raise ArchiveError(f"central directory record at offset {cpos} runs past the directory's end")
            if crel + total > cwlen:
                cwin, cwin_start, crel = pread_exact(fd, max(total, min(CHUNK, cd_end - cpos)), cpos), cpos, 0
                cwlen = len(cwin)
            if method == STORED and not flags & 9:
                plain, plain_flags = cwin[crel : crel + 12], flags
            name = cwin[crel + 46 : crel + 46 + nlen]
            if usize == _ONES32 or csize == _ONES32 or off == _ONES32:
                usize, csize, off = _zip64_values(cwin[crel + 46 + nlen : crel + 46 + nlen + xlen], usize, csize, off)
            seen += 1
            if seen > count:
                raise ArchiveError(f"central directory holds more entries than the {count} its end record claims")
            off += shift
            entry_end = off + 30 + nlen + csize
            if off < low or entry_end > cd_offset:
                _refuse_place(name, off, shift, low)
            low = entry_end
            cpos += total
            record = new(Record, (name, flags, method, crc, csize, usize, off, attr, dos))
            if off != pos:
                raise ArchiveError(f"{off - pos} unaccounted bytes before this entry" if off > pos else
                                   "entry overlaps the one before it", decode_name(record))  # fmt: skip
            rel = off - win_start
            head_end = rel + 30 + nlen
            if rel < 0 or head_end + 64 > wlen:
                # Refill with the window starting at this header, big enough for it and small data
                # (a big entry's data is read by `_chunks`, never whole: the window stays bounded).
                want = min(max(CHUNK, 30 + nlen + 64 + min(csize, CHUNK)), cd_offset - off)
                win, win_start, rel = pread_exact(fd, want, off), off, 0
                wlen = len(win)
                head_end = 30 + nlen
            if wlen < head_end:
                raise ArchiveError("local header truncated", decode_name(record))
            lsig, lflags, lmethod, lcrc, lcsize, lusize, lnlen, lxlen = unpack_local(win, rel)
            if lsig != _SIG_LOCAL:
                raise ArchiveError("bad local header signature", decode_name(record))
            if lnlen != nlen or win[rel + 30 : head_end] != name:
                raise ArchiveError("local header name differs from the central directory", decode_name(record))
            if lmethod != method or (lflags ^ flags) & (FLAG_ENCRYPTED | FLAG_DESCRIPTOR):
                raise ArchiveError(
                    "local header method or flags differ from the central directory", decode_name(record)
                )
            if not flags & FLAG_DESCRIPTOR:
                if lcrc != crc:
                    raise ArchiveError("local header CRC-32 differs from the central directory", decode_name(record))
                if (lcsize, lusize) != (csize, usize) and not (lcsize == _ONES32 or lusize == _ONES32):
                    raise ArchiveError("local header sizes differ from the central directory", decode_name(record))
            data_off = off + 30 + lnlen + lxlen
            data_end = data_off + csize
            pos = data_end
            if flags & FLAG_DESCRIPTOR:
                pos = self._descriptor_end(record, data_end)
            if pos > cd_offset:
                raise ArchiveError("entry runs into the central directory (truncated archive?)", decode_name(record))
            if flags & FLAG_ENCRYPTED:
                yield *record, None, "is encrypted with ZIP encryption, which is not supported"
                continue
            if method != STORED and method != DEFLATED:
                yield *record, None, f"uses compression method {method}, which is not supported"
                continue
            if method == STORED and csize != usize:
                raise ArchiveError(f"stored entry has compressed size {csize} but size {usize}", decode_name(record))
            if csize > CHUNK or usize > CHUNK:
                yield *record, self._chunks(record, data_off), None
                continue
            drel = data_off - win_start
            if drel + csize > wlen:
                win, win_start, drel = (
                    pread_exact(fd, min(max(CHUNK, csize), cd_offset - data_off), data_off),
                    data_off,
                    0,
                )
                wlen = len(win)
            data = win[drel : drel + csize]
            if len(data) < csize:
                raise ArchiveError("entry data truncated", decode_name(record))
            if method == DEFLATED:
                data, problem = _inflate(data, usize)
                if problem is not None:
                    yield *record, None, problem
                    continue
            if crc32(data) != crc:
                yield *record, None, f"CRC-32 mismatch: recorded {crc:08x}, data gives {crc32(data):08x}"
                continue
            yield *record, data, None
        if seen != count:
            raise ArchiveError(f"central directory holds {seen} entries, its end record says {count}")
        if pos != cd_offset:
            raise ArchiveError(f"{cd_offset - pos} unaccounted bytes before the central directory")

    def read_entry(self, record: Record) -> Iterator[bytes]:
        """One entry's data by itself (a seek, not the sequential pass): chunks, checked like `entries()`."""
        head = pread_exact(self.fd, 30 + len(record.name), record.offset)
        if len(head) < 30 + len(record.name) or not head.startswith(b"PK\x03\x04"):
            raise ArchiveError("bad local header signature", decode_name(record))
        if head[30:] != record.name:
            raise ArchiveError("local header name differs from the central directory", decode_name(record))
        if record.flags & FLAG_ENCRYPTED or record.method not in (STORED, DEFLATED):
            raise ArchiveError("entry is encrypted or compressed with an unsupported method", decode_name(record))
        nlen, xlen = struct.unpack_from("<HH", head, 26)
        data_off = record.offset + 30 + nlen + xlen
        if data_off + record.csize > self.cd_offset:
            raise ArchiveError("entry runs into the central directory (truncated archive?)", decode_name(record))
        return self._chunks(record, data_off)

    def _descriptor_end(self, record: Record, data_end: int) -> int:
        """Where the data descriptor after an entry ends; it must repeat the directory's CRC-32 and sizes."""
        raw = pread_exact(self.fd, 24, data_end)
        start = 4 if raw.startswith(_DESCRIPTOR_SIG) else 0
        zip64 = record.csize >= _ONES32 or record.usize >= _ONES32
        for wide in (True,) if zip64 else (False, True):
            if wide:
                fields = struct.unpack_from("<IQQ", raw, start) if len(raw) >= start + 20 else None
                length = start + 20
            else:
                fields = struct.unpack_from("<III", raw, start) if len(raw) >= start + 12 else None
                length = start + 12
            if fields == (record.crc, record.csize, record.usize):
                return data_end + length
        raise ArchiveError("data descriptor differs from the central directory", decode_name(record))

    def _chunks(self, record: Record, data_off: int) -> Iterator[bytes]:
        """A big entry's data in CHUNK pieces, checked (size, CRC-32, bounded inflate) at the end."""
        end = data_off + record.csize
        pos = data_off
        crc = size = 0
        inflater = zlib.decompressobj(-15) if record.method == DEFLATED else None
        try:
            while pos < end:
                raw = os.pread(self.fd, min(CHUNK, end - pos), pos)
                if not raw:
                    raise EntryDamaged("entry data truncated")
                pos += len(raw)
                piece = raw if inflater is None else inflater.decompress(raw, CHUNK)
                while True:  # one bounded piece at a time: a small chunk may inflate to gigabytes
                    crc = zlib.crc32(piece, crc)
                    size += len(piece)
                    if size > record.usize:
                        raise EntryDamaged(f"inflates to more than the recorded {record.usize} bytes")
                    yield piece
                    if inflater is None or not inflater.unconsumed_tail:
                        break
                    piece = inflater.decompress(inflater.unconsumed_tail, CHUNK)
        except zlib.error as exc:
            raise EntryDamaged(f"deflate data corrupt: {exc}") from None
        if inflater is not None and not inflater.eof:
            raise EntryDamaged("deflate stream truncated")
        if size != record.usize:
            raise EntryDamaged(f"size {size} differs from the recorded {record.usize}")
        if crc != record.crc:
            raise EntryDamaged(f"CRC-32 mismatch: recorded {record.crc:08x}, data gives {crc:08x}")


def _inflate(data: bytes, usize: int) -> tuple[bytes, str | None]:
    """Inflate a small entry, never past its recorded size plus one byte: (data, problem)."""
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data, usize + 1)
    except zlib.error as exc:
        return b"", f"deflate data corrupt: {exc}"
    if len(out) > usize:
        return b"", f"inflates to more than the recorded {usize} bytes"
    if not inflater.eof:
        return b"", "deflate stream truncated"
    if len(out) != usize:
        return b"", f"size {len(out)} differs from the recorded {usize}"
    return out, None


def _zip64_values(extra: bytes, usize: int, csize: int, off: int) -> tuple[int, int, int]:
    """Replace the all-ones fields by the ZIP64 extra field's values, in APPNOTE order."""
    i = 0
    while i + 4 <= len(extra):
        kind, length = _EXTRA_HEAD.unpack_from(extra, i)
        i += 4
        if kind == _ZIP64_EXTRA:
            j, stop = i, min(i + length, len(extra))
            if usize == _ONES32 and j + 8 <= stop:
                (usize,) = _U64.unpack_from(extra, j)
                j += 8
            if csize == _ONES32 and j + 8 <= stop:
                (csize,) = _U64.unpack_from(extra, j)
                j += 8
            if off == _ONES32 and j + 8 <= stop:
                (off,) = _U64.unpack_from(extra, j)
            break
        i += length
    if _ONES32 in (usize, csize, off):
        raise ArchiveError("ZIP64 extra field missing or too short")
    return usize, csize, off
