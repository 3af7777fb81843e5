"""Copies verified by SHA-256, this plan's own archives found by summary and manifest, retention touching nothing else."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from datetime import UTC
from pathlib import Path

import pytest

from jobs.models import JobCancelled
from jobs.plans.archives import SUMMARY_KEY, ArchiveUnreadable, read_manifest_head, read_summary
from jobs.plans.placing import CopyFailed, copy_name, own_archives, place_copy, prune
from jobs.plans.retention import KeepPolicy


def make_archive(path: Path, *, plan_id: str | None, created: str, wallet: str = "Default", summary: bool = True,
                 compression: int = zipfile.ZIP_DEFLATED) -> Path:  # fmt: skip
    head = {"format": "cloudcoin-wallet-backup", "format_version": 1, "wallet_name": wallet,
            "wallet_path": f"/w/{wallet}", "created": created, "job_id": "j", "plan_id": plan_id}  # fmt: skip
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr(f"{wallet}/Bank/1.bin", os.urandom(400))
        archive.writestr(
            "backup-manifest.json", json.dumps(head)[:-1] + ', "entries": [\n{"path": "x"}\n], "entry_count": 1}'
        )
        line = json.dumps({SUMMARY_KEY: 1, "wallet_path": f"/w/{wallet}", "created": created, "plan_id": plan_id})
        archive.comment = (f"CloudCoin wallet backup: {wallet}, {created[:10]}\n" + (line if summary else "")).encode()
    return path


def name(day: str, n: int = 1, wallet: str = "Default") -> str:
    return f"CloudCoin-Wallet-Backup_{wallet}_{day}{'' if n == 1 else f'_{n}'}.zip"


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_summary_and_manifest_head_are_read_from_the_end(tmp_path, compression):
    path = make_archive(
        tmp_path / name("2026-11-01"), plan_id="p_1", created="2026-11-01T02:30:00.000Z", compression=compression
    )
    assert read_summary(path)["plan_id"] == "p_1"
    assert read_manifest_head(path)["plan_id"] == "p_1"


def test_a_foreign_or_broken_file_is_unreadable(tmp_path):
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("readme.txt", "hello")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(
        make_archive(tmp_path / "t.zip", plan_id="p", created="2026-01-01T00:00:00Z").read_bytes()[:-30]
    )
    for path in (foreign, truncated):
        with pytest.raises(ArchiveUnreadable):
            read_summary(path)
        with pytest.raises(ArchiveUnreadable):
            read_manifest_head(path)


def test_retention_touches_only_this_plans_archives(tmp_path):
    plan = "p_aaaaaaaaaaaaaaaa"
    mine = [
        make_archive(tmp_path / name(f"2026-11-0{d}"), plan_id=plan, created=f"2026-11-0{d}T02:30:00.000Z")
        for d in (1, 2, 3)
    ]
    renamed = make_archive(
        tmp_path / name("2026-10-01", wallet="OldName"),
        plan_id=plan,
        created="2026-10-01T02:30:00.000Z",
        wallet="OldName",
    )
    other_plan = make_archive(
        tmp_path / name("2026-09-01"), plan_id="p_bbbbbbbbbbbbbbbb", created="2026-09-01T02:30:00.000Z"
    )
    manual = make_archive(tmp_path / name("2026-09-02"), plan_id=None, created="2026-09-02T02:30:00.000Z")
    no_summary = make_archive(
        tmp_path / name("2026-09-03"), plan_id=plan, created="2026-09-03T02:30:00.000Z", summary=False
    )
    foreign = tmp_path / name("2026-09-04")
    foreign.write_bytes(b"not a zip at all")
    (tmp_path / "holiday.zip").write_bytes(b"PK")
    os.symlink(mine[0], tmp_path / name("2026-08-01"))
    assert sorted(a.name for a in own_archives(tmp_path, plan)) == sorted([*(p.name for p in mine), renamed.name])
    pruned, failed = prune(tmp_path, plan_id=plan, keep=KeepPolicy(last=2), zone=UTC, protect=mine[2].name)
    assert sorted(pruned) == sorted([str(mine[0]), str(renamed)]) and failed == []
    for survivor in (mine[1], mine[2], other_plan, manual, no_summary, foreign, tmp_path / "holiday.zip"):
        assert survivor.exists()
    assert os.path.islink(tmp_path / name("2026-08-01"))


def test_keep_all_zero_deletes_nothing(tmp_path):
    make_archive(tmp_path / name("2026-11-01"), plan_id="p", created="2026-11-01T02:30:00Z")
    assert prune(tmp_path, plan_id="p", keep=KeepPolicy(), zone=UTC, protect="x") == ([], [])


def test_a_copy_is_verified_and_named_without_replacing(tmp_path):
    source = make_archive(tmp_path / name("2026-11-01"), plan_id="p", created="2026-11-01T02:30:00Z")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    target = tmp_path / "usb"
    target.mkdir()
    (target / name("2026-11-01")).write_bytes(b"an older backup of the same day")
    seen = []
    final = place_copy(source, sha, target, job_id="j1", wallet_name="Default", date="2026-11-01",
                       cancel=threading.Event(), progress=seen.append)  # fmt: skip
    assert final == target / name("2026-11-01", 2)
    assert final.read_bytes() == source.read_bytes() and seen[-1] == source.stat().st_size
    assert (target / name("2026-11-01")).read_bytes() == b"an older backup of the same day"
    assert final.stat().st_mode & 0o777 == 0o600
    assert not (target / copy_name("j1")).exists()


def test_a_copy_that_does_not_match_is_removed(tmp_path):
    source = make_archive(tmp_path / "a.zip", plan_id="p", created="2026-11-01T02:30:00Z")
    target = tmp_path / "usb"
    target.mkdir()
    with pytest.raises(CopyFailed, match="does not match"):
        place_copy(source, "0" * 64, target, job_id="j2", wallet_name="Default", date="2026-11-01",
                   cancel=threading.Event(), progress=lambda n: None)  # fmt: skip
    assert os.listdir(target) == []


def test_a_copy_never_creates_its_destination_and_stops_on_cancel(tmp_path):
    source = make_archive(tmp_path / "a.zip", plan_id="p", created="2026-11-01T02:30:00Z")
    with pytest.raises(CopyFailed, match="Destination directory does not exist"):
        place_copy(source, "0" * 64, tmp_path / "unplugged", job_id="j3", wallet_name="Default", date="2026-11-01",
                   cancel=threading.Event(), progress=lambda n: None)  # fmt: skip
    assert not (tmp_path / "unplugged").exists()
    target = tmp_path / "usb"
    target.mkdir()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        place_copy(source, "0" * 64, target, job_id="j4", wallet_name="Default", date="2026-11-01",
                   cancel=cancel, progress=lambda n: None)  # fmt: skip
    assert os.listdir(target) == []


def test_a_plan_runs_archive_never_creates_its_destination(tmp_path):
    from jobs.backup.backup import BackupRun, write_backup
    from jobs.models import JobFailed

    wallet = tmp_path / "Wallets" / "Default"
    (wallet / "Bank").mkdir(parents=True)
    (wallet / "Fracked").mkdir()
    (tmp_path / "mnt").mkdir()  # the mount point is there, the stick is not
    run = BackupRun(
        job_id="j5", wallet_path=wallet, destination=tmp_path / "mnt" / "usb", data_dir=tmp_path / "Client_Data",
        key=None, date="2026-01-01", plan_id="p_1", create_destination=False,
    )  # fmt: skip
    with pytest.raises(JobFailed) as caught:
        write_backup(run, cancel=threading.Event(), report=lambda **_: None)
    assert caught.value.body["message"] == "Destination directory does not exist"
    assert os.listdir(tmp_path / "mnt") == []


def test_a_copy_falls_back_to_read_and_write_across_file_systems(tmp_path, monkeypatch):
    import errno

    source = make_archive(tmp_path / "a.zip", plan_id="p", created="2026-11-01T02:30:00Z")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()

    def refuse(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    target = tmp_path / "usb"
    target.mkdir()
    final = place_copy(source, sha, target, job_id="j6", wallet_name="Default", date="2026-11-01",
                       cancel=threading.Event(), progress=lambda n: None)  # fmt: skip
    assert final.read_bytes() == source.read_bytes()
