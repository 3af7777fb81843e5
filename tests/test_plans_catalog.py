"""The backups catalog: summaries cached by (path, size, mtime), a place that hangs reported, not waited on."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from jobs.plans import catalog
from jobs.plans.catalog import BackupCatalog
from tests.test_plans_placing import make_archive, name


async def to_thread(fn, *args, **kwargs):
    return await asyncio.to_thread(fn, *args, **kwargs)


def never_verified(path: str, size: int, mtime_ns: int) -> None:
    return None


async def test_a_place_that_does_not_answer_is_reported_unreachable(tmp_path, monkeypatch):
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    fast.mkdir()
    slow.mkdir()
    make_archive(fast / name("2026-11-01"), plan_id=None, created="2026-11-01T02:30:00.000Z")
    release = threading.Event()
    real = BackupCatalog._scan

    def scan(self, place):
        if place == str(slow):
            release.wait(5)  # a sleeping network drive
        return real(self, place)

    monkeypatch.setattr(BackupCatalog, "_scan", scan)
    monkeypatch.setattr(catalog, "PLACE_TIMEOUT_S", 0.2)
    started = time.monotonic()
    listing = await BackupCatalog(run_blocking=to_thread).find(
        places=[str(fast), str(slow)], wallet_paths=["/w/Default"], verified_at=never_verified
    )
    release.set()
    assert time.monotonic() - started < 2
    assert listing["places"] == [
        {"path": str(fast), "reachable": True, "archives": 1},
        {"path": str(slow), "reachable": False},
    ]
    assert listing["count"] == 1


async def test_summaries_are_read_once_per_path_size_and_mtime(tmp_path, monkeypatch):
    place = tmp_path / "usb"
    place.mkdir()
    path = make_archive(place / name("2026-11-01"), plan_id="p_1", created="2026-11-01T02:30:00.000Z")
    reads: list[str] = []
    real = catalog.read_summary

    def counted(p):
        reads.append(str(p))
        return real(p)

    monkeypatch.setattr(catalog, "read_summary", counted)
    found = BackupCatalog(run_blocking=to_thread)
    for _ in range(3):
        listing = await found.find(places=[str(place)], wallet_paths=["/w/Default"], verified_at=never_verified)
        assert [b["plan_id"] for b in listing["backups"]] == ["p_1"]
    assert reads == [str(path)]
    path.write_bytes(path.read_bytes())  # same bytes, a new modification time: read again
    await found.find(places=[str(place)], wallet_paths=["/w/Default"], verified_at=never_verified)
    assert len(reads) == 2


async def test_archives_of_other_wallets_are_not_listed(tmp_path):
    place = tmp_path / "usb"
    place.mkdir()
    make_archive(place / name("2026-11-01"), plan_id=None, created="2026-11-01T02:30:00.000Z")
    make_archive(
        place / name("2026-11-02", wallet="Other"), plan_id=None, created="2026-11-02T02:30:00.000Z", wallet="Other"
    )
    listing = await BackupCatalog(run_blocking=to_thread).find(
        places=[str(place), str(Path(tmp_path / "missing"))], wallet_paths=["/w/Other"], verified_at=never_verified
    )
    assert [b["wallet_path"] for b in listing["backups"]] == ["/w/Other"]
    assert listing["places"][1] == {"path": str(tmp_path / "missing"), "reachable": False}
