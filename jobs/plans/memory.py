"""What the server remembers beside the plans: each wallet's former paths, and when archives were verified.

A wallet renamed by the server keeps its former paths, so archives whose summary names an old path
are still listed as its own. An archive verified by a plan run is remembered by (path, size,
modification time): the backups list shows `verified_at` only while the file is unchanged. Both live
in small side files of the plan store, rewritten atomically, each under its own lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .store import HISTORY_FILE, VERIFIED_FILE, PlanStore

#: former paths remembered per wallet, and verified archives remembered
MAX_FORMER_PATHS = 50
MAX_VERIFIED = 5000

RunBlocking = Callable[..., Awaitable[Any]]


class ArchiveMemory:
    def __init__(self, store: PlanStore, *, run_blocking: RunBlocking) -> None:
        self._store = store
        self._run_blocking = run_blocking
        self._history: dict[str, list[str]] = {}
        self._verified: dict[str, dict[str, Any]] = {}
        self._history_lock = asyncio.Lock()
        self._verified_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<ArchiveMemory wallets={len(self._history)} verified={len(self._verified)}>"

    async def load(self) -> None:
        self._history = await self._run_blocking(self._store.read_side, HISTORY_FILE)
        self._verified = await self._run_blocking(self._store.read_side, VERIFIED_FILE)

    def former_paths(self, wallet_path: str) -> list[str]:
        return list(self._history.get(wallet_path, []))

    async def wallet_moved(self, old_path: str, new_path: str) -> None:
        """`new_path` inherits `old_path` and every path it had before."""
        former = [old_path, *self._history.pop(old_path, [])]
        merged = [*self._history.get(new_path, []), *former]
        self._history[new_path] = [p for p in dict.fromkeys(merged) if p != new_path][:MAX_FORMER_PATHS]
        async with self._history_lock:
            await self._run_blocking(self._store.write_side, HISTORY_FILE, dict(self._history))

    def verified_at(self, path: str, size: int, mtime_ns: int) -> str | None:
        mark = self._verified.get(path)
        if mark and mark.get("size") == size and mark.get("mtime_ns") == mtime_ns:
            return str(mark["verified_at"])
        return None

    async def mark_verified(self, path: str, size: int, mtime_ns: int, *, at: str) -> None:
        self._verified.pop(path, None)  # re-inserted last: the oldest marks are the first forgotten
        self._verified[path] = {"size": size, "mtime_ns": mtime_ns, "verified_at": at}
        while len(self._verified) > MAX_VERIFIED:
            self._verified.pop(next(iter(self._verified)))
        async with self._verified_lock:
            await self._run_blocking(self._store.write_side, VERIFIED_FILE, dict(self._verified))
