"""Restore and verify share one checker: the same crafted archives are refused by both; bombs, depth and
truncation are clear 4xx answers; cancel and kill -9 mid-restore leave nothing; a round trip keeps bytes,
modes and times."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import struct
import threading
import time
import tracemalloc
import warnings
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app.wallet.paths import canonical
from app.wallet.registry import read_registry
from jobs.models import JobCancelled
from jobs.restore.extraction import extract_archive
from jobs.restore.plan import RestorePlan
from jobs.restore.temp import temp_name
from jobs.restore.verify import verify_archive
from tests.conftest import coin_bytes, write_coins
from tests.crashserver import CrashServer
from tests.crashserver import server as server  # noqa: F401 - the fixture
from tests.test_backup_crash import stored_status
from tests.test_restore import backup, build_archive, flip_byte_of, hand_files, make_wallet, restore_call

MANIFEST = "backup-manifest.json"


def manifest_document(root: str, entries: list[tuple[str, bytes | None]], **extra: Any) -> dict[str, Any]:
    listed: list[dict[str, Any]] = []
    for name, data in entries:
        if data is None:
            listed.append({"path": name, "type": "dir"})
        else:
            listed.append({"path": name, "type": "file", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return {"format": "cloudcoin-wallet-backup", "format_version": 1, "wallet_name": root[:-1], "root": root,
            "created": datetime.now(UTC).isoformat(), "key_check": None, **extra, "entries": listed}  # fmt: skip


def write_zip(path: Path, entries: list[tuple[str, bytes | None]], manifest: bytes | None, *,
              compression: int = zipfile.ZIP_STORED) -> Path:  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some tests want
        with zipfile.ZipFile(path, "w", compression) as archive:
            for name, data in entries:
                archive.writestr(name, data or b"")
            if manifest is not None:
                archive.writestr(MANIFEST, manifest, compress_type=zipfile.ZIP_DEFLATED)
    return path


def wallet_entries(files: dict[str, bytes], root: str = "Hand/") -> list[tuple[str, bytes | None]]:
    entries: list[tuple[str, bytes | None]] = [(root, None), (root + "Bank/", None), (root + "Fracked/", None)]
    return entries + [(root + name, data) for name, data in files.items()]


def sound_archive(path: Path, files: dict[str, bytes] | None = None) -> Path:
    entries = wallet_entries(files if files is not None else hand_files())
    return write_zip(path, entries, json.dumps(manifest_document("Hand/", entries)).encode())


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def central_offset(path: Path) -> int:
    raw = path.read_bytes()
    return int(struct.unpack_from("<I", raw, len(raw) - 6)[0])


# -- the archives both refuse --------------------------------------------------------------------------


def crafted(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.zip"
    if kind == "truncated-end":
        sound_archive(path)
        path.write_bytes(path.read_bytes()[:-10])
    elif kind == "file-folder-collision":
        files = {"Bank/1.bin": coin_bytes(1), "Bank/1.bin/2.bin": coin_bytes(2)}
        sound_archive(path, files)
    elif kind == "duplicate":
        entries = wallet_entries(hand_files())
        entries.append(entries[-1])
        write_zip(path, entries, json.dumps(manifest_document("Hand/", entries[:-1])).encode())
    elif kind == "1000-deep":
        sound_archive(path, {**hand_files(), "/".join(["d"] * 1000) + "/x.txt": b"deep"})
    elif kind == "overlapping":
        sound_archive(path)
        infos = zipfile.ZipFile(path).infolist()
        cd = central_offset(path)
        offset = cd + sum(46 + len(info.filename) for info in infos[:4])  # the fifth record
        patch(path, offset + 42, struct.pack("<I", infos[3].header_offset))
    elif kind == "local-header-name":
        sound_archive(path)
        info = zipfile.ZipFile(path).infolist()[3]
        patch(path, info.header_offset + 30, b"X")
    elif kind == "more-entries-than-claimed":
        sound_archive(path)
        patch(path, os.path.getsize(path) - 14, struct.pack("<HH", 5, 5))
    elif kind == "crc":
        sound_archive(path)
        flip_byte_of(path, "Hand/Bank/1 CloudCoin #1 'x'.bin")
    elif kind == "sha256":
        entries = wallet_entries(hand_files())
        document = manifest_document("Hand/", entries)
        document["entries"][-1]["sha256"] = "0" * 64
        write_zip(path, entries, json.dumps(document).encode())
    elif kind == "symlink":
        link = zipfile.ZipInfo("Hand/Bank/link.bin")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        build_archive(path, hand_files(), extra=[(link, b"/etc/passwd")])
    elif kind == "unlisted":
        entries = wallet_entries(hand_files())
        write_zip(
            path, [*entries, ("Hand/Bank/extra.bin", b"x")], json.dumps(manifest_document("Hand/", entries)).encode()
        )
    elif kind == "manifest-bomb":
        entries = wallet_entries(hand_files())
        text = json.dumps(manifest_document("Hand/", entries))
        padded = text[:1] + " " * (65 << 20) + text[1:]  # 65 MiB of JSON that deflates to ~65 KB
        write_zip(path, entries, padded.encode())
    else:
        raise AssertionError(kind)
    return path


CRAFTED = [
    "truncated-end", "file-folder-collision", "duplicate", "1000-deep", "overlapping", "local-header-name",
    "more-entries-than-claimed", "crc", "sha256", "symlink", "unlisted", "manifest-bomb",
]  # fmt: skip


async def verify_call(client: TestClient, path: Path) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/wallets/backup/verify", json={"zip_path": str(path)})
    return response.status, await response.json()


@pytest.mark.parametrize("kind", CRAFTED)
async def test_restore_and_verify_refuse_the_same_crafted_archives(
    client: TestClient, data_dir: Path, tmp_path: Path, kind: str
) -> None:
    path = crafted(kind, tmp_path)
    wallets = data_dir / "Wallets"
    before = sorted(os.listdir(wallets))
    status, body = await restore_call(client, zip_path=str(path))
    assert status == 400, body
    assert sorted(os.listdir(wallets)) == before  # nothing written, nothing left
    status, verified = await verify_call(client, path)
    assert status == 200, verified
    assert verified["ok"] is False and verified["problems"], verified


async def test_a_sound_hand_built_archive_passes_both(client: TestClient, data_dir: Path, tmp_path: Path) -> None:
    path = sound_archive(tmp_path / "sound.zip")
    status, verified = await verify_call(client, path)
    assert (status, verified["ok"], verified["problems"]) == (200, True, [])
    status, body = await restore_call(client, zip_path=str(path))
    assert status == 200, body


# -- the reasons (issue 10: items 9, 12, 14) ------------------------------------------------------------


async def test_a_1000_deep_entry_is_a_400_with_the_reason(client: TestClient, tmp_path: Path) -> None:
    deep = "Hand/" + "/".join(["d"] * 1000) + "/x.txt"
    status, body = await restore_call(client, zip_path=str(crafted("1000-deep", tmp_path)))
    assert status == 400
    assert body["error"] == f"Refusing to restore: archive entry '{deep}' is nested more than 64 folders deep"


async def test_verify_reads_the_end_records_exactly(client: TestClient, tmp_path: Path) -> None:
    status, body = await verify_call(client, crafted("truncated-end", tmp_path))
    assert status == 200 and body["ok"] is False and body["entries_checked"] == 0
    assert body["problems"] == [
        {"path": "", "problem": "end of central directory record not found (truncated or not a ZIP archive)"}
    ]


async def test_verify_reports_a_file_folder_collision(client: TestClient, tmp_path: Path) -> None:
    status, body = await verify_call(client, crafted("file-folder-collision", tmp_path))
    assert status == 200 and body["ok"] is False
    assert body["problems"] == [{"path": "Hand/Bank/1.bin", "problem": "collides with another entry"}]
    status, refused = await restore_call(client, zip_path=str(tmp_path / "file-folder-collision.zip"))
    assert (status, refused["error"]) == (
        400,
        "Refusing to restore: archive entry 'Hand/Bank/1.bin' collides with another entry",
    )


async def test_a_manifest_over_64_mib_is_refused(client: TestClient, tmp_path: Path) -> None:
    path = crafted("manifest-bomb", tmp_path)
    assert path.stat().st_size < 1 << 20
    status, body = await restore_call(client, zip_path=str(path))
    size = zipfile.ZipFile(path).getinfo(MANIFEST).file_size
    assert (status, body["error"]) == (
        400,
        f"Refusing to restore: {MANIFEST} is too large ({size:,} bytes; at most 64 MiB)",
    )
    status, verified = await verify_call(client, path)
    assert verified["problems"] == [
        {"path": MANIFEST, "problem": f"{MANIFEST} is too large ({size:,} bytes; at most 64 MiB)"}
    ]


def padded_manifest_archive(tmp_path: Path, padding: int) -> Path:
    """A sound archive whose manifest carries `padding` bytes of whitespace: valid JSON, under the cap."""
    entries = wallet_entries(hand_files())
    text = json.dumps(manifest_document("Hand/", entries))
    return write_zip(tmp_path / "padded.zip", entries, (text[:1] + " " * padding + text[1:]).encode())


def test_a_big_manifest_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    path = padded_manifest_archive(tmp_path, 60 << 20)
    tracemalloc.start()
    try:
        body = verify_archive(path, cancel=threading.Event(), report=lambda **_: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert body["ok"] is True, body
    assert peak < 12 << 20, f"peak {peak / 1e6:.1f} MB for a 60 MiB manifest"


async def test_two_big_manifests_at_once_do_not_stall_the_server(client: TestClient, tmp_path: Path) -> None:
    path = padded_manifest_archive(tmp_path, 60 << 20)
    loop = asyncio.get_running_loop()
    lags: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = loop.time()
            await asyncio.sleep(0.005)
            lags.append(loop.time() - started - 0.005)

    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(stop))
    results = await asyncio.gather(verify_call(client, path), verify_call(client, path))
    stop.set()
    await tick
    assert [(status, body["ok"]) for status, body in results] == [(200, True), (200, True)]
    # Before the manifest was streamed, one such verify froze the loop for seconds (json.loads holds the GIL).
    assert max(lags) < 0.5, f"the event loop stalled {max(lags) * 1000:.0f} ms"


# -- a round trip keeps every byte, mode and time -------------------------------------------------------


async def test_round_trip_keeps_bytes_modes_and_times(client: TestClient, data_dir: Path, tmp_path: Path) -> None:
    wallet = await make_wallet(client, data_dir)
    big = os.urandom((1 << 20) + 4321)  # bigger than the reader's window: streamed in chunks
    (wallet / "Receipts" / "big.dat").write_bytes(big)
    old = time.time() - 86_400 * 3
    for folder, _, files in os.walk(wallet):
        for name in files:
            os.utime(os.path.join(folder, name), (old, old))
    zip_path = await backup(client, wallet, tmp_path / "backups")
    status, body = await restore_call(client, zip_path=str(zip_path), new_name="Copy")
    assert status == 200, body
    copy = Path(body["wallet_path"])
    originals = {os.path.relpath(os.path.join(f, n), wallet) for f, d, fs in os.walk(wallet) for n in d + fs}
    restored = {os.path.relpath(os.path.join(f, n), copy) for f, d, fs in os.walk(copy) for n in d + fs}
    assert restored == originals
    for rel in originals:
        source, target = wallet / rel, copy / rel
        mode = target.lstat().st_mode
        if source.is_dir():
            assert stat.S_ISDIR(mode) and stat.S_IMODE(mode) == 0o700, rel
        else:
            assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o600, rel
            assert target.read_bytes() == source.read_bytes(), rel
            assert abs(target.stat().st_mtime - source.stat().st_mtime) <= 2, rel  # DOS times: 2 s steps
    assert body["bytes_restored"] == sum((wallet / rel).stat().st_size for rel in originals if (wallet / rel).is_file())


# -- cancel and kill -9 mid-restore leave nothing ------------------------------------------------------


def test_a_cancel_mid_restore_removes_everything(tmp_path: Path) -> None:
    files = {f"Bank/{n} CloudCoin.bin": coin_bytes(n) for n in range(1, 1200)}
    path = sound_archive(tmp_path / "many.zip", files)
    location = tmp_path / "location"
    location.mkdir()
    plan = RestorePlan(path, location, "Hand")
    temp = location / temp_name("cancelled")
    cancel = threading.Event()
    seen: list[int] = []

    def report(**values: Any) -> None:
        if values.get("done"):
            seen.append(values["done"])
            assert temp.is_dir() and len(os.listdir(temp / "Bank")) >= values["done"]
            cancel.set()  # after the first files are on disk

    with pytest.raises(JobCancelled):
        extract_archive(plan, temp, key=None, cancel=cancel, report=report)
    assert seen and seen[0] < len(files)
    assert os.listdir(location) == []


def deflated_wallet_archive(path: Path, big: int) -> Path:
    """A wallet archive with a `big`-byte deflated file of zeros: tiny on disk, seconds to restore."""
    zeros = bytes(big)
    files = {**hand_files(), "Receipts/slow.log": zeros}
    entries = wallet_entries(files)
    manifest = json.dumps(manifest_document("Hand/", entries)).encode()
    return write_zip(path, entries, manifest, compression=zipfile.ZIP_DEFLATED)


def test_sigkill_mid_restore_leaves_nothing_after_restart(server: CrashServer, tmp_path: Path) -> None:  # noqa: F811
    archive = deflated_wallet_archive(tmp_path / "slow.zip", 400 << 20)
    location = tmp_path / "location"
    location.mkdir()
    server.start()
    status, accepted = server.request("POST", "/api/wallets/restore",
                                      {"zip_path": str(archive), "location": str(location), "async": True})  # fmt: skip
    assert status == 202, accepted
    job_id = accepted["job_id"]
    temp = location / temp_name(job_id)
    deadline = time.monotonic() + 30
    while not (temp / "Receipts" / "slow.log").exists():
        assert time.monotonic() < deadline, "the restore never started writing"
        time.sleep(0.001)
    while stored_status(server.data_dir, job_id) != "running":
        assert time.monotonic() < deadline, "the job never reached the job store"
        time.sleep(0.005)
    assert not (location / "Hand").exists(), "the restore finished before the kill: make the file bigger"
    server.kill()
    assert temp.is_dir(), "the kill must leave the half-written folder"

    server.start()

    assert os.listdir(location) == []
    registered = [entry.wallet_path for entry in read_registry(server.data_dir / "wallet-locations.csv").entries]
    assert str(canonical(location) / "Hand") not in registered
    status, job = server.request("GET", f"/api/jobs/{job_id}")
    assert status == 200 and job["status"] == "failed", job


def test_restore_writes_coin_files_relative_to_their_folder(tmp_path: Path) -> None:
    """A folder swapped for a link mid-restore cannot redirect the files after it (descriptors, not paths)."""
    files = {f"Bank/{n}.bin": coin_bytes(n) for n in range(1, 600)}
    path = sound_archive(tmp_path / "a.zip", files)
    location = tmp_path / "location"
    location.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    temp = location / temp_name("swap")
    swapped: list[bool] = []

    def report(**values: Any) -> None:
        if values.get("done") and not swapped:
            os.rename(temp / "Bank", temp / "Bank-moved")
            os.symlink(outside, temp / "Bank")
            swapped.append(True)

    extract_archive(RestorePlan(path, location, "Hand"), temp, key=None, cancel=threading.Event(), report=report)
    assert swapped and os.listdir(outside) == []
    assert len(os.listdir(temp / "Bank-moved")) == len(files)


async def test_the_restored_balance_is_counted_as_the_balance_endpoint_counts(
    client: TestClient, data_dir: Path, tmp_path: Path
) -> None:
    """The restore counts value from the bytes it writes: the same rules as GET /api/wallets/balance."""
    wallet = await make_wallet(client, data_dir)
    (wallet / "Bank" / "25 CloudCoin #77 'junk'.bin").write_bytes(b"not a coin file")  # value from the name
    (wallet / "Bank" / "junk.bin").write_bytes(b"nothing to count")  # unreadable, no value
    (wallet / "Limbo" / "nested").mkdir()
    write_coins(wallet / "Limbo" / "nested", [900])  # not directly in Limbo: not counted
    (wallet / "Fracked" / "big 1 CloudCoin #5 'x'.bin").write_bytes(coin_bytes(5) + bytes((1 << 20) + 10))
    zip_path = await backup(client, wallet, tmp_path / "backups")
    status, body = await restore_call(client, zip_path=str(zip_path), new_name="Counted")
    assert status == 200, body
    response = await client.get("/api/wallets/balance", params={"wallet_path": body["wallet_path"]})
    counted = await response.json()
    assert (body["total_value"], body["total_notes"]) == (counted["total_value"], counted["total_notes"])
    original = await (await client.get("/api/wallets/balance", params={"wallet_path": str(wallet)})).json()
    assert counted["total_value"] == original["total_value"] and counted["total_notes"] == original["total_notes"]
