"""Reading a ZIP back with flat memory: `verify_zip` (every entry's CRC and sizes) and `iter_zip_entries`."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator

from jobs.zip.records import (
    _CENTRAL_READ,
    _CHUNK,
    _DEFLATED,
    _END,
    _END64,
    _EXTRA_HEAD,
    _FLAG_DESCRIPTOR,
    _FLAG_ENCRYPTED,
    _FLAG_UTF8,
    _LOCAL_READ,
    _LOCAL_SIG,
    _LOCATOR64,
    _MAX_PROBLEMS,
    _NO_EXTRA,
    _SIG_CENTRAL,
    _SIG_END64,
    _SIG_LOCAL,
    _SIG_LOCATOR64,
    _STORED,
    _U16,
    _U32,
    _U64,
    _ZIP64_EXTRA_ID,
    ZipFormatError,
    ZipProblem,
    pread_exact,
)

__all__ = ["ZipFormatError", "ZipProblem", "iter_zip_entries", "verify_zip"]


def _find_end(fd: int, file_size: int) -> tuple[int, int, int, int]:
    """Locate the central directory: (entry count, its offset in the file, its size, shift).

    The offset is where the directory really is. In archives with data prepended (self-extractors)
    every stored offset is short by `shift`, which the caller adds, as zipfile does.
    """
    if file_size < _END.size:
        raise ZipFormatError("file too short to be a ZIP archive")
    tail_len = min(file_size, _END.size + 0xFFFF)
    tail_start = file_size - tail_len
    tail = pread_exact(fd, tail_len, tail_start)
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
    locator = pread_exact(fd, _LOCATOR64.size, end_pos - 20) if end_pos >= 20 else b""
    if len(locator) == 20 and _U32.unpack_from(locator)[0] == _SIG_LOCATOR64:
        _, _, end64_offset, _ = _LOCATOR64.unpack(locator)
        # Right before the locator is where it must be; the stored offset is the fallback.
        for where in (end_pos - 20 - _END64.size, end64_offset):
            rec = pread_exact(fd, _END64.size, where) if 0 <= where < file_size else b""
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


def _zip64_extra(extra: bytes | memoryview, usize: int, csize: int, off: int) -> tuple[int, int, int]:
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
            win = pread_exact(fd, min(_CHUNK, end - pos), pos)
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
            win = pread_exact(fd, max(total, min(_CHUNK, end - pos)), pos)
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
        problems.append(ZipProblem("", f"central directory holds {checked} entries, its end record says {count}"))
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
            win = pread_exact(fd, _CHUNK, off)
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
                    win = pread_exact(fd, max(_CHUNK, data_off + csize - off), off)
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


def _inflate_check(chunks: Iterable[bytes | memoryview], usize: int) -> tuple[int, int, str | None]:
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
