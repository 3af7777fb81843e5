"""After a big job the server gives its freed memory back (jobs/memory.py), and only then."""

from __future__ import annotations

import asyncio
import ctypes.util
import threading
from pathlib import Path
from typing import Any

import pytest

from jobs import memory, runner
from jobs.memory import release_memory


def test_release_memory_trims_glibcs_heap_where_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    if memory._libc() is None:
        pytest.skip("this C library has no malloc_trim (not glibc)")
    calls: list[int] = []

    class FakeLibc:
        def malloc_trim(self, pad: int) -> int:
            calls.append(pad)
            return 1

    assert release_memory() is True  # the real call, once
    monkeypatch.setattr(memory, "_libc", lambda: FakeLibc())
    assert release_memory() is True
    assert calls == [0]


def test_without_malloc_trim_release_memory_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    memory._libc.cache_clear()
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    try:
        assert release_memory() is False
    finally:
        memory._libc.cache_clear()


async def test_the_runner_releases_memory_after_a_long_job_not_after_a_short_one(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = threading.Event()
    monkeypatch.setattr(runner, "release_memory", released.set)
    # An empty wallet's backup takes a few milliseconds: a short job, nothing released.
    response = await client.post("/api/wallets/backup", json={"destination": str(tmp_path / "a")})
    assert response.status == 200, await response.text()
    await asyncio.sleep(0.1)
    assert not released.is_set()
    monkeypatch.setattr(runner, "RELEASE_MEMORY_AFTER_S", 0.0)  # every job counts as long now
    response = await client.post("/api/wallets/backup", json={"destination": str(tmp_path / "b")})
    assert response.status == 200, await response.text()
    assert await asyncio.to_thread(released.wait, 5)
