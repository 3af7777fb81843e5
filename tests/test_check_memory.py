"""A finished check keeps nothing of the archive: its name hashes (8 bytes an entry) go with it at
once, not at the garbage collector's next full pass. A verify's progress callback refers to its
check; the cycle kept 2.4 MB of a 300,000-entry archive per verify alive, and the server's size
crept up verify after verify (50 → 65 MB over eight), which also showed in the next job's peak."""

from __future__ import annotations

import gc
import json
import threading
import weakref
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.restore import checker
from jobs.restore.checker import BackupCheck
from jobs.restore.extraction import extract_archive
from jobs.restore.plan import RestorePlan
from jobs.restore.verify import verify_archive
from jobs.zip.reader import ZipReader
from tests.conftest import coin_bytes
from tests.test_restore import build_archive


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[weakref.ref[BackupCheck]]]:
    """Weak references to every check made, with the garbage collector off meanwhile (only plain
    reference counting frees anything)."""
    made: list[weakref.ref[BackupCheck]] = []
    real_init = BackupCheck.__init__

    def init(self: BackupCheck, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(weakref.ref(self))

    monkeypatch.setattr(BackupCheck, "__init__", init)
    gc.collect()
    gc.disable()
    try:
        yield made
    finally:
        gc.enable()


def files(count: int) -> dict[str, bytes]:
    return {f"Bank/1 CloudCoin #{serial} 'x'.bin": coin_bytes(serial) for serial in range(1, count + 1)}


@pytest.mark.parametrize("manifest_last", [True, False], ids=["one pass", "two passes"])
def test_a_finished_verify_leaves_no_check_behind(
    tmp_path: Path, checks: list[weakref.ref[BackupCheck]], manifest_last: bool
) -> None:
    archive = build_archive(tmp_path / "b.zip", files(40))
    if not manifest_last:  # an entry after the manifest: verify takes scan() and a second pass
        move_manifest_before(archive, "Hand/Limbo/")
    body = verify_archive(archive, cancel=threading.Event(), report=lambda **_: None)
    assert body["ok"] is True, body["problems"]
    assert body["entries_checked"] == 40 + 3 + (0 if manifest_last else 1) + 1
    assert len(checks) == 1
    assert checks[0]() is None, "the check outlived its verify"


def test_a_finished_restore_leaves_no_check_behind(tmp_path: Path, checks: list[weakref.ref[BackupCheck]]) -> None:
    archive = build_archive(tmp_path / "b.zip", files(40))
    target = tmp_path / "place" / "Restored"
    target.parent.mkdir()
    counts = extract_archive(
        RestorePlan(archive, target.parent, target.name),
        target,
        key=None,
        cancel=threading.Event(),
        report=lambda **_: None,
    )
    assert counts.files == 40
    assert len(checks) == 1
    assert checks[0]() is None, "the check outlived its restore"


@pytest.mark.parametrize("stop", ["clean", "broken directory", "too many problems"])
def test_the_name_hashes_go_when_the_scan_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str) -> None:
    """However the scan ends, the check itself (restore keeps it for the data pass) holds no hashes."""
    archive = build_archive(tmp_path / "b.zip", files(40))
    if stop == "broken directory":
        data = bytearray(archive.read_bytes())
        at = data.rfind(b"PK\x01\x02")
        data[at : at + 4] = b"XXXX"
        archive.write_bytes(bytes(data))
    if stop == "too many problems":
        monkeypatch.setattr(checker, "MAX_PROBLEMS", 1)
        archive = build_archive(tmp_path / "d.zip", files(3), extra=[("Hand/../escape.bin", b"x")])
    seen: list[str] = []
    with ZipReader(archive) as reader:
        check = BackupCheck(reader, lambda path, problem, kind: seen.append(problem), threading.Event())
        assert check.scan() is (stop == "clean"), seen
        assert check._buckets == []


def move_manifest_before(archive: Path, folder: str) -> None:
    """Rewrite `archive` with one more folder entry, listed in the manifest but stored after it."""
    with zipfile.ZipFile(archive) as zf:
        items = [(info, zf.read(info)) for info in zf.infolist()]
    *entries, (manifest_info, manifest) = items
    document = json.loads(manifest)
    document["entries"].append({"path": folder, "type": "dir"})
    with zipfile.ZipFile(archive, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
        zf.writestr(manifest_info, json.dumps(document))
        zf.writestr(folder, b"")
