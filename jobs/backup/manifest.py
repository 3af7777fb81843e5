"""The backup manifest: its format, the per-folder figures, and streaming it into the archive last.

``backup-manifest.json`` sits at the archive root as the last entry (deflated up to 4 MiB, stored
above), format_version 1::

    {"format": "cloudcoin-wallet-backup", "format_version": 1,
     "wallet_name": "Default", "wallet_path": "/…/Wallets/Default", "root": "Default/",
     "created": "2026-11-23T10:04:11.204Z", "server_version": "0.1.0", "job_id": "…",
     "reencrypted": true,            # plaintext coins were encrypted on their way in
     "key_check": "0a1b2c3d4e5f60",  # hex key check of the login key, null without one
     "entries": [                    # every entry but the manifest itself, in archive order
        {"path": "Default/", "type": "dir"},
        {"path": "Default/Bank/1 CloudCoin #7 'x'.bin", "type": "file", "size": 455, "sha256": "…"},
        …],
     "entry_count": 12,
     "skipped": [{"path": "Default/Bank/link.bin", "reason": "symbolic link"}],  # first 1000
     "folders": {"Bank": {"files", "bytes", "coin_files", "coins", "value", "value_units",
                          "encrypted_files", "unreadable_coin_files"}, …, ".": the root's files},
     "totals": {"files", "dirs", "bytes", "coins", "value", "value_units"},
     "counters": {"files_added", "files_skipped", "files_reencrypted_for_backup",
                  "files_added_plaintext", "files_added_multi_warned"}}

``size`` and ``sha256`` describe the bytes in the archive (after encryption); ``value`` is in
CloudCoin like the balance endpoint, ``value_units`` the exact integer in units of 10^-8.

The entry list grows with the wallet (14 MB for 100,000 coins), so the walk (jobs/backup/archive.py)
writes its lines to a nameless spool file, compact JSON, one entry a line, each line but the first
starting with the comma that separates it from the one before; `add_manifest` streams head, spool
and tail into the archive: nothing of it is held in memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from app import __version__
from app.wallet.coins import units_to_json
from jobs.zip.writer import ZipWriter

MANIFEST_NAME = "backup-manifest.json"
MANIFEST_FORMAT = "cloudcoin-wallet-backup"
MANIFEST_VERSION = 1
#: marks the ZIP comment's second line as this server's summary of the archive
SUMMARY_KEY = "cloudcoin_backup_summary"
#: manifests bigger than this are stored, not deflated: deflating the 14 MB manifest of a
#: 100,000-coin wallet takes ~0.25 s, a sixth of the whole backup, to save ~9 MB
_DEFLATE_MANIFEST_UP_TO = 4 << 20
#: and those up to it at zlib's fastest level: the 1.7 MB manifest of a 10,000-coin wallet takes
#: 15 ms instead of level 6's 33 ms (a tenth of that backup) and is 497 KB instead of 454 KB
MANIFEST_LEVEL = 1


class FolderStats:
    """Per top-level folder: what the manifest's "folders" reports."""

    __slots__ = ("files", "bytes", "coin_files", "coins", "units", "encrypted", "unreadable")

    def __init__(self) -> None:
        self.files = self.bytes = self.coin_files = self.coins = self.units = 0
        self.encrypted = self.unreadable = 0

    def __repr__(self) -> str:
        return f"<FolderStats files={self.files} coins={self.coins} units={self.units}>"

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "coin_files": self.coin_files,
            "coins": self.coins,
            "value": units_to_json(self.units),
            "value_units": self.units,
            "encrypted_files": self.encrypted,
            "unreadable_coin_files": self.unreadable,
        }


def manifest_head(
    *,
    wallet_name: str,
    wallet_path: str,
    job_id: str,
    reencrypted: bool,
    key_check: bytes | None,
    plan_id: str | None = None,
) -> dict[str, Any]:
    """The fields before "entries", in their order."""
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "wallet_name": wallet_name,
        "wallet_path": wallet_path,
        "root": f"{wallet_name}/",
        "created": _utc_now(),
        "server_version": __version__,
        "job_id": job_id,
        "plan_id": plan_id,  # the backup plan that made it (retention counts only its own), else null
        "reencrypted": reencrypted,
        "key_check": key_check.hex() if key_check is not None else None,
    }


def manifest_tail(
    *,
    entry_count: int,
    skipped: list[dict[str, str]],
    folders: dict[str, FolderStats],
    dirs: int,
    counters: dict[str, int],
) -> dict[str, Any]:
    """The fields after "entries", in their order; `entry_count` does not count the manifest."""
    totals = FolderStats()
    for stats in folders.values():
        totals.files += stats.files
        totals.bytes += stats.bytes
        totals.coins += stats.coins
        totals.units += stats.units
    return {
        "entry_count": entry_count,
        "skipped": skipped,
        "folders": {name: stats.to_json() for name, stats in sorted(folders.items())},
        "totals": {
            "files": totals.files,
            "dirs": dirs,
            "bytes": totals.bytes,
            "coins": totals.coins,
            "value": units_to_json(totals.units),
            "value_units": totals.units,
        },
        "counters": counters,
    }


def summary_comment(head: dict[str, Any], tail: dict[str, Any], *, date: str) -> bytes:
    """The ZIP comment: the seed-style human line, then one JSON line that lists and retention read
    from the end record alone (the central directory of a big wallet is megabytes)."""
    counters = tail["counters"]
    summary = {
        SUMMARY_KEY: 1,
        "wallet_name": head["wallet_name"],
        "wallet_path": head["wallet_path"],
        "created": head["created"],
        "job_id": head["job_id"],
        "plan_id": head.get("plan_id"),
        "coins": tail["totals"]["coins"],
        "value": tail["totals"]["value"],
        # no plaintext Bank/Fracked coin inside (a multi-coin file goes in verbatim, so it counts against)
        "encrypted": counters["files_added_plaintext"] == 0 and counters["files_added_multi_warned"] == 0,
    }
    human = f"CloudCoin wallet backup: {head['wallet_name']}, {date}"
    comment = (human + "\n" + json.dumps(summary, ensure_ascii=True)).encode("utf-8", "replace")
    if len(comment) > 0xFFFF:  # a path cannot make it this long on any real system; the human line still fits
        return human.encode("utf-8", "replace")[:0xFFFF]
    return comment


def add_manifest(writer: ZipWriter, entries: IO[bytes], *, head: dict[str, Any], tail: dict[str, Any]) -> None:
    """Stream the manifest into the archive: `head`, the spooled entry lines, `tail`."""
    head_json = json.dumps(head, ensure_ascii=True)
    tail_json = json.dumps(tail, ensure_ascii=True)
    size = entries.tell()
    entries.flush()
    entries.seek(0)

    def chunks() -> Iterator[bytes]:
        yield head_json[:-1].encode() + b', "entries": [\n'
        while chunk := entries.read(1 << 20):
            yield chunk
        yield b"\n], " + tail_json[1:].encode() + b"\n"

    writer.add_stream(
        MANIFEST_NAME, chunks(), compress=size <= _DEFLATE_MANIFEST_UP_TO, mtime=time.time(), level=MANIFEST_LEVEL
    )


def _utc_now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
