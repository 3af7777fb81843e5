"""What the server reads of a backup archive without reading it whole: its summary and its manifest's head.

- The **summary** is the JSON line of the ZIP comment, after the seed-style human line
  (``CloudCoin wallet backup: Default, 2026-11-30``): wallet path and name, creation time, plan id,
  coins, value, encrypted. It is found from the end record alone, without the central directory.
- The **manifest's head** (format, wallet, creation time, job and plan ids) is the start of
  ``backup-manifest.json``, the archive's last entry: one read of the end of the central directory
  for that entry's record, one read of the first bytes of the entry. Never a walk of the archive.

Every function here blocks; a file that is not such an archive raises `ArchiveUnreadable`.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from typing import Any

from jobs.backup.manifest import MANIFEST_FORMAT, SUMMARY_KEY
from jobs.backup.manifest import MANIFEST_NAME as _MANIFEST_NAME

MANIFEST_NAME = _MANIFEST_NAME.encode()
#: `CloudCoin-Wallet-Backup_<wallet>_<YYYY-MM-DD>[_N].zip` (api.md's file name rule)
ARCHIVE_NAME = re.compile(
    r"^CloudCoin-Wallet-Backup_(?P<wallet>.+)_(?P<date>\d{4}-\d{2}-\d{2})(?:_(?P<n>[1-9]\d*))?\.zip$"
)

_END = struct.Struct("<IHHHHIIH")  # end of central directory, 22 bytes
_LOCATOR64 = struct.Struct("<IIQI")  # zip64 end locator, 20 bytes
_END64 = struct.Struct("<IQHHIIQQQQ")  # zip64 end record, 56 bytes
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory record, 46 bytes
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # local header, 30 bytes
_SIG_END, _SIG_LOCATOR64, _SIG_END64 = 0x06054B50, 0x07064B50, 0x06064B50
_SIG_CENTRAL, _SIG_LOCAL = 0x02014B50, 0x04034B50
_MAX_COMMENT = 0xFFFF
#: how much of the manifest is read for its head (the head is a few hundred bytes)
_HEAD_READ = 64 << 10
#: the manifest's central record with the largest zip64 extra there can be
_LAST_RECORD_MAX = _CENTRAL.size + len(MANIFEST_NAME) + 4 + 24 + 64


class ArchiveUnreadable(ValueError):
    """Not a backup archive this server can read (truncated, foreign, damaged)."""


def is_archive_name(name: str) -> bool:
    return ARCHIVE_NAME.match(name) is not None


def read_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The summary of the ZIP comment; ArchiveUnreadable without one."""
    with open(path, "rb", buffering=0) as fh:
        comment, _, _ = _end_record(fh.fileno())
    _, _, line = comment.partition(b"\n")
    try:
        summary = json.loads(line)
    except ValueError:
        raise ArchiveUnreadable("no summary in the ZIP comment") from None
    if not isinstance(summary, dict) or summary.get(SUMMARY_KEY) != 1:
        raise ArchiveUnreadable("no summary in the ZIP comment")
    return summary


def read_manifest_head(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest's fields before its entry list; ArchiveUnreadable when there is no such manifest."""
    with open(path, "rb", buffering=0) as fh:
        fd = fh.fileno()
        _, cd_offset, cd_size = _end_record(fd)
        method, csize, offset = _last_central_record(fd, cd_offset, cd_size)
        local = _pread(fd, _LOCAL.size, offset)
        fields = _LOCAL.unpack(local)
        if fields[0] != _SIG_LOCAL:
            raise ArchiveUnreadable("no local header where the manifest should start")
        start = offset + _LOCAL.size + fields[9] + fields[10]
        raw = os.pread(fd, min(csize, _HEAD_READ), start)
    if method == 8:
        try:
            data = zlib.decompressobj(-15).decompress(raw, _HEAD_READ)
        except zlib.error as exc:
            raise ArchiveUnreadable(f"manifest cannot be inflated: {exc}") from None
    elif method == 0:
        data = raw
    else:
        raise ArchiveUnreadable(f"manifest compressed with method {method}")
    cut = data.find(b', "entries": [')
    if cut < 0:
        raise ArchiveUnreadable("manifest head not found")
    try:
        head = json.loads(data[:cut] + b"}")
    except ValueError:
        raise ArchiveUnreadable("manifest head is not JSON") from None
    if not isinstance(head, dict) or head.get("format") != MANIFEST_FORMAT:
        raise ArchiveUnreadable("not a CloudCoin wallet backup manifest")
    return head


def _pread(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise ArchiveUnreadable("truncated archive")
    return data


def _end_record(fd: int) -> tuple[bytes, int, int]:
    """(comment, central directory offset, central directory size), zip64 where the archive has it."""
    size = os.fstat(fd).st_size
    if size < _END.size:
        raise ArchiveUnreadable("too small to be a ZIP archive")
    window = min(size, _END.size + _MAX_COMMENT)
    tail = _pread(fd, window, size - window)
    at = len(tail)
    while True:
        at = tail.rfind(b"PK\x05\x06", 0, at)
        if at < 0:
            raise ArchiveUnreadable("no end of central directory record")
        fields = _END.unpack_from(tail, at)
        if at + _END.size + fields[7] == len(tail):  # the comment runs exactly to the end of the file
            break
    comment = tail[at + _END.size :]
    cd_size, cd_offset = fields[5], fields[6]
    if cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF:
        end_at = size - window + at
        if end_at < _LOCATOR64.size:
            raise ArchiveUnreadable("zip64 locator missing")
        locator = _LOCATOR64.unpack(_pread(fd, _LOCATOR64.size, end_at - _LOCATOR64.size))
        if locator[0] != _SIG_LOCATOR64:
            raise ArchiveUnreadable("zip64 locator missing")
        end64 = _END64.unpack(_pread(fd, _END64.size, locator[2]))
        if end64[0] != _SIG_END64:
            raise ArchiveUnreadable("zip64 end record missing")
        cd_size, cd_offset = end64[8], end64[9]
    return comment, cd_offset, cd_size


def _last_central_record(fd: int, cd_offset: int, cd_size: int) -> tuple[int, int, int]:
    """(method, compressed size, local header offset) of the manifest, the directory's last record."""
    window = min(cd_size, _LAST_RECORD_MAX)
    data = _pread(fd, window, cd_offset + cd_size - window)
    at = len(data)
    while (at := data.rfind(b"PK\x01\x02", 0, at)) >= 0:
        if len(data) - at < _CENTRAL.size:
            continue
        fields = _CENTRAL.unpack_from(data, at)
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        if at + _CENTRAL.size + name_len + extra_len + comment_len != len(data):
            continue
        name = data[at + _CENTRAL.size : at + _CENTRAL.size + name_len]
        if name != MANIFEST_NAME:
            raise ArchiveUnreadable("the last entry is not the manifest")
        method, csize, usize, offset = fields[4], fields[8], fields[9], fields[16]
        extra = data[at + _CENTRAL.size + name_len : at + _CENTRAL.size + name_len + extra_len]
        csize, offset = _zip64_values(extra, usize=usize, csize=csize, offset=offset)
        return method, csize, offset
    raise ArchiveUnreadable("no central directory record for the manifest")


def _zip64_values(extra: bytes, *, usize: int, csize: int, offset: int) -> tuple[int, int]:
    """The compressed size and offset, taken from the zip64 extra field where they overflowed."""
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        if tag == 1:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, at + 4))
            if usize == 0xFFFFFFFF and values:
                values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
            break
        at += 4 + length
    return csize, offset
