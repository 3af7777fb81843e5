"""The walk's batch path (jobs/backup/batch.py): the same archive as file by file, and every odd case sent back."""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest

import jobs.backup.archive as backup_archive
from app.wallet import crypto
from jobs.backup import batch
from jobs.backup.archive import Archiver
from jobs.backup.coins import plain_single_units, plain_singles_units
from jobs.backup.output import ArchiveFile
from jobs.zip.writer import ZipWriter
from tests.conftest import coin_bytes, write_coins

LIMIT = 64 << 20


def archive(wallet: Path, dest: Path, key: bytes | None = None) -> tuple[Path, Archiver]:
    dest.mkdir()
    path = dest / "b.zip"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        archiver = Archiver(
            wallet=wallet, job_id="j1", date="2026-12-01", key=key, spool_dir=dest, out=ArchiveFile(fd),
            cancel=threading.Event(), report=lambda **_: None, total=0,
        )  # fmt: skip
        archiver.archive()
    finally:
        os.close(fd)
    return path, archiver


def contents(path: Path, key: bytes | None = None) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """Every entry as zipfile sees it, in order, and the manifest without its creation time.

    With a key, encrypted coins are compared by what they decrypt to (their nonces are random),
    and the manifest's SHA-256s are checked against the archive and then left out.
    """
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("backup-manifest.json"))
        entries = []
        for info in zf.infolist():
            if info.filename == "backup-manifest.json":
                continue
            data, crc = zf.read(info), info.CRC
            if key is not None and info.filename.lower().endswith(".bin") and data[5:6] == b"\x04":
                data, crc = crypto.decrypt_coin_file(data, key), None
            entries.append(
                (info.filename, info.date_time, crc, info.file_size, info.compress_type, info.external_attr, data)
            )
        if key is not None:
            for line in manifest["entries"]:
                if line["type"] == "file":
                    assert hashlib.sha256(zf.read(line["path"])).hexdigest() == line.pop("sha256")
    manifest.pop("created")
    return entries, manifest


def odd_wallet(root: Path) -> Path:
    """A wallet whose folders mix plain coins (several batches) with every case the batch path sends back."""
    wallet = root / "W"
    write_coins(wallet / "Bank", range(1, 700))
    write_coins(wallet / "Fracked", range(1000, 1300), 3)
    bank = wallet / "Bank"
    (bank / "with pans.bin").write_bytes(coin_bytes(5000, pans=True))
    (bank / "multi.bin").write_bytes(coin_bytes(5001) + b"x")  # not a plain single coin
    (bank / "notes.txt").write_text("a note")
    (bank / "Ünïcode.bin").write_bytes(coin_bytes(5002))
    (bank / "back\\slash.bin").write_bytes(coin_bytes(5003))
    (bank / "UPPER.BIN").write_bytes(coin_bytes(5004))
    (bank / "sub").mkdir()
    write_coins(bank / "sub", range(6000, 6010))
    os.symlink(bank / "notes.txt", bank / "link.bin")
    os.mkfifo(bank / "pipe.bin")
    (wallet / "Fracked" / "big.bin").write_bytes(os.urandom(3000))
    return wallet


def per_file_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_archive, "plain_names", lambda chunk: None)
    monkeypatch.setattr(ZipWriter, "add_stored_batch", ZipWriter._add_stored_each)


@pytest.mark.parametrize("logged_in", [False, True], ids=["plain", "encrypted"])
def test_batch_path_writes_the_archive_the_per_file_path_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logged_in: bool
) -> None:
    wallet = odd_wallet(tmp_path)
    key = crypto.derive_key("pw") if logged_in else None
    calls = []
    real = batch.read_files
    monkeypatch.setattr(backup_archive, "read_files", lambda *a: calls.append(1) or real(*a))
    fast_zip, fast = archive(wallet, tmp_path / "fast", key)
    assert len(calls) >= 3  # the batch path did run: Bank's and Fracked's batches
    with monkeypatch.context() as m:
        per_file_only(m)
        slow_zip, slow = archive(wallet, tmp_path / "slow", key)
    assert contents(fast_zip, key) == contents(slow_zip, key)
    assert fast.counters() == slow.counters()
    assert {k: v.to_json() for k, v in fast.folders.items()} == {k: v.to_json() for k, v in slow.folders.items()}
    assert fast.skipped == slow.skipped and fast.files_skipped == 3  # the link, the FIFO, the backslash
    if logged_in:
        assert fast.reencrypted > 699 + 300  # Bank's tree and Fracked's plain coins, at least
    else:
        assert fast.plaintext > 699 + 300
    names = {entry[0] for entry in contents(fast_zip)[0]}
    assert "W/Bank/Ünïcode.bin" in names and "W/Bank/UPPER.BIN" in names and "W/Bank/sub/" in names


def test_read_files_reads_regular_files_whole_with_their_times(tmp_path: Path) -> None:
    paths = write_coins(tmp_path, range(1, 5))
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        got = batch.read_files(fd, [p.name for p in paths], LIMIT)
    finally:
        os.close(fd)
    assert got is not None
    datas, mtimes = got
    assert datas == [p.read_bytes() for p in paths]
    assert mtimes == [p.stat().st_mtime for p in paths]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("odd", ["link", "fifo", "folder", "missing", "too big", "unreadable"])
def test_read_files_answers_none_for_any_odd_file_and_leaks_no_descriptor(tmp_path: Path, odd: str) -> None:
    paths = write_coins(tmp_path, range(1, 6))
    target = tmp_path / "odd.bin"
    if odd == "link":
        os.symlink(paths[0], target)
    elif odd == "fifo":
        os.mkfifo(target)
    elif odd == "folder":
        target.mkdir()
    elif odd == "too big":
        target.write_bytes(bytes(LIMIT + 1))
    elif odd == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads files whatever their mode")
        target.write_bytes(b"x")
        target.chmod(0)
    names = [p.name for p in paths[:3]] + [target.name] + [p.name for p in paths[3:]]
    before = open_fds()
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert batch.read_files(fd, names, LIMIT) is None
    finally:
        os.close(fd)
    assert open_fds() == before


def entries_of(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


@pytest.mark.parametrize("odd", ["sub", "notes.txt", "Ünï.bin", "a\\b.bin", "X.BIN", "link.bin"])
def test_plain_names_sends_back_a_chunk_with_anything_but_plain_bin_files(tmp_path: Path, odd: str) -> None:
    write_coins(tmp_path, range(1, 4))
    assert batch.plain_names(entries_of(tmp_path)) == sorted(os.listdir(tmp_path))
    if odd == "sub":
        (tmp_path / odd).mkdir()
    elif odd == "link.bin":
        os.symlink(tmp_path / "nowhere", tmp_path / odd)
    else:
        (tmp_path / odd).write_bytes(b"x")
    assert batch.plain_names(entries_of(tmp_path)) is None


def test_plain_singles_units_is_the_sum_of_plain_single_units_or_none() -> None:
    datas = [coin_bytes(serial, serial % 15 - 8) for serial in range(1, 40)]
    assert plain_singles_units(datas) == sum(plain_single_units(d) for d in datas)  # type: ignore[misc]
    odd = [
        coin_bytes(1, pans=True),  # longer
        coin_bytes(1)[:-1] + b"",  # shorter
        b"\x08" + coin_bytes(1)[1:],  # another format
        coin_bytes(1)[:5] + b"\x01" + coin_bytes(1)[6:],  # encrypted
        coin_bytes(1)[:15] + b"\x01" + coin_bytes(1)[16:],  # a flag byte set
        coin_bytes(1)[:34] + b"\x7f" + coin_bytes(1)[35:],  # no such denomination
    ]
    for data in odd:
        assert plain_single_units(data) is None
        assert plain_singles_units([*datas, data]) is None
    assert plain_singles_units([]) is None


def test_add_stored_batch_writes_byte_for_byte_what_entry_by_entry_writes(tmp_path: Path) -> None:
    rng = random.Random(3)
    names = [f"W/Bank/{i} coin.bin" for i in range(600)] + ["W/Bank/ünï.bin", "W/x..y.bin", "W/big.bin"]
    datas = [rng.randbytes(rng.randrange(0, 900)) for _ in names[:-1]] + [rng.randbytes(1 << 20)]
    mtimes = [1_700_000_000 + rng.randrange(0, 10**7) + 0.5 for _ in names]  # DOS times not cached yet
    outputs = []
    for method in (ZipWriter.add_stored_batch, ZipWriter._add_stored_each):
        path = tmp_path / f"{method.__name__}.zip"
        with path.open("wb") as out:
            writer = ZipWriter(out, spool_dir=tmp_path)
            for at in range(0, len(names), 256):
                method(writer, names[at : at + 256], datas[at : at + 256], mtimes[at : at + 256])
            writer.close()
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    with zipfile.ZipFile(tmp_path / "add_stored_batch.zip") as zf:
        assert [zf.read(n) for n in names] == datas


def test_add_stored_batch_refuses_lists_of_different_lengths(tmp_path: Path) -> None:
    with (tmp_path / "b.zip").open("wb") as out:
        writer = ZipWriter(out, spool_dir=tmp_path)
        with pytest.raises(ValueError):
            writer.add_stored_batch(["a.bin", "b.bin"], [b"a"], [0.0, 0.0])
        writer.abort()


def test_read_files_holds_at_most_its_share_of_open_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's open-file budget counts FILES_OPEN_AT_ONCE per job thread: a batch keeps to it."""
    paths = write_coins(tmp_path, range(1, 60))
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    real_open, real_close = os.open, os.close
    held: set[int] = set()
    most = 0

    def counting_open(*args: Any, **kwargs: Any) -> int:
        nonlocal most
        opened = real_open(*args, **kwargs)
        held.add(opened)
        most = max(most, len(held))
        return opened

    def counting_close(descriptor: int) -> None:
        held.discard(descriptor)
        real_close(descriptor)

    monkeypatch.setattr(os, "open", counting_open)
    monkeypatch.setattr(os, "close", counting_close)
    try:
        got = batch.read_files(fd, [p.name for p in paths], LIMIT)
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert got is not None and len(got[0]) == len(paths)
    assert most == batch.FILES_OPEN_AT_ONCE and not held
