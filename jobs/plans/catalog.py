"""The backups the server knows: a wallet's archives in every place it has written backups to.

The places are `BackupPlaces.txt` and every plan destination. Each place is listed on the thread
pool in its own task; one that does not answer within `PLACE_TIMEOUT_S` (a sleeping network drive)
is reported unreachable instead of being waited on. Of each archive only its summary is read (the
ZIP comment, from the end record), cached by (path, size, mtime): a second listing reads nothing
but directory entries. An archive is the wallet's when its summary names the wallet's path or a
path the wallet had before a rename; one that cannot be read is listed `readable: false` when its
file name carries the wallet's name (or a former one).
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .archives import ARCHIVE_NAME, ArchiveUnreadable, read_manifest_head, read_summary

#: how long one place may take to list before it is reported unreachable
PLACE_TIMEOUT_S = 3.0
#: summaries remembered
MAX_CACHED = 20_000

RunBlocking = Callable[..., Awaitable[Any]]
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Found:
    """One archive file in a place, with what could be read of it (None: unreadable)."""

    path: str
    size: int
    mtime_ns: int
    wallet_in_name: str
    summary: dict[str, Any] | None


class BackupCatalog:
    def __init__(self, *, run_blocking: RunBlocking) -> None:
        self._run_blocking = run_blocking
        self._cache: dict[tuple[str, int, int], dict[str, Any] | None] = {}
        self._cache_lock = threading.Lock()  # places are listed on several pool threads at once

    def __repr__(self) -> str:
        return f"<BackupCatalog cached={len(self._cache)}>"

    async def find(
        self, *, places: list[str], wallet_paths: list[str], verified_at: Callable[[str, int, int], str | None]
    ) -> dict[str, Any]:
        """`{"backups": [...], "count": N, "places": [...]}` for the wallet known by `wallet_paths` (current first)."""
        tasks = [asyncio.ensure_future(self._run_blocking(self._scan, place)) for place in places]
        reports: list[dict[str, Any]] = []
        backups: list[dict[str, Any]] = []
        if tasks:
            await asyncio.wait(tasks, timeout=PLACE_TIMEOUT_S)
        names = {os.path.basename(path) for path in wallet_paths}
        known = set(wallet_paths)
        for place, task in zip(places, tasks, strict=True):
            if not task.done() or task.exception() is not None:
                if not task.done():
                    task.add_done_callback(_consume)
                reports.append({"path": place, "reachable": False})
                continue
            found: list[Found] = task.result()
            mine = [item for item in found if _belongs(item, known, names)]
            reports.append({"path": place, "reachable": True, "archives": len(mine)})
            backups.extend(_show(item, verified_at) for item in mine)
        backups.sort(key=lambda b: (b["created_at"] or "", b["zip_path"]), reverse=True)
        return {"backups": backups, "count": len(backups), "places": reports}

    def _scan(self, place: str) -> list[Found]:
        """Every archive-named regular file directly in `place` (blocking). OSError when unreachable."""
        found = []
        with os.scandir(place) as entries:
            for entry in entries:
                match = ARCHIVE_NAME.match(entry.name)
                if match is None:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                key = (entry.path, st.st_size, st.st_mtime_ns)
                with self._cache_lock:
                    cached = self._cache.get(key, _MISSING)
                if cached is _MISSING:
                    cached = _summary(entry.path)
                    with self._cache_lock:
                        if len(self._cache) >= MAX_CACHED:
                            self._cache.pop(next(iter(self._cache)))
                        self._cache[key] = cached
                found.append(Found(entry.path, st.st_size, st.st_mtime_ns, match["wallet"], cached))
        return found


def read_places_file(path: Path) -> list[str]:
    """The folders of BackupPlaces.txt, newest first (blocking); none when the file is missing."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def _summary(path: str) -> dict[str, Any] | None:
    """The summary, or for an archive without one the manifest's head (no coin figures); None: unreadable."""
    try:
        return read_summary(path)
    except (OSError, ArchiveUnreadable):
        pass
    try:
        head = read_manifest_head(path)
    except (OSError, ArchiveUnreadable):
        return None
    return {"wallet_path": head.get("wallet_path"), "created": head.get("created"), "plan_id": head.get("plan_id")}


def _belongs(item: Found, known: set[str], names: set[str]) -> bool:
    if item.summary is None:
        return item.wallet_in_name in names
    return item.summary.get("wallet_path") in known


def _show(item: Found, verified_at: Callable[[str, int, int], str | None]) -> dict[str, Any]:
    shown: dict[str, Any] = {"zip_path": item.path, "bytes": item.size}
    summary = item.summary
    if summary is None:
        return {**shown, "readable": False, "created_at": None, "plan_id": None, "coins": None, "value": None,
                "encrypted": None, "verified_at": None}  # fmt: skip
    return {
        **shown,
        "readable": True,
        "wallet_path": summary.get("wallet_path"),
        "created_at": summary.get("created"),
        "plan_id": summary.get("plan_id"),
        "coins": summary.get("coins"),
        "value": summary.get("value"),
        "encrypted": summary.get("encrypted"),
        "verified_at": verified_at(item.path, item.size, item.mtime_ns),
    }


def _consume(task: asyncio.Future[Any]) -> None:
    """A place that answered too late: its result (or error) is dropped, never logged as unretrieved."""
    if not task.cancelled():
        task.exception()
