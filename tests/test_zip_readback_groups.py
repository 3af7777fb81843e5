"""verify_zip's group path: many small stored entries checked at once, every fault still found and named."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import pytest

import jobs.zip.readback as readback
from jobs.zip.readback import ZipProblem, verify_zip
from jobs.zip.writer import ZipWriter

MTIME = 1_700_000_000.0
COUNT = 700  # three groups of 256 and a bit


def names(count: int = COUNT) -> list[str]:
    return [f"W/Bank/{i} CloudCoin.bin" for i in range(count)]


def write_plain(path: Path, entry_names: list[str] | None = None) -> list[str]:
    """An archive of small stored entries only, as a backup's coin folders make."""
    entry_names = entry_names or names()
    with open(path, "wb") as out, ZipWriter(out, spool_dir=path.parent) as writer:
        writer.add_stored_batch(entry_names, [os.urandom(439) for _ in entry_names], [MTIME] * len(entry_names))
        writer.close()
    return entry_names


def header_offset(path: Path, name: str) -> int:
    with zipfile.ZipFile(path) as zf:
        return zf.getinfo(name).header_offset


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


@pytest.fixture
def groups_seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, bool] | None]:
    seen: list[tuple[int, int, bool] | None] = []
    real = readback._plain_group

    def spy(*args: int) -> tuple[int, int, bool] | None:
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(readback, "_plain_group", spy)
    return seen


def test_a_clean_archive_of_small_stored_entries_is_checked_in_groups(tmp_path: Path, groups_seen: list) -> None:
    path = tmp_path / "a.zip"
    write_plain(path)
    progress: list[int] = []
    assert verify_zip(path, on_entry=progress.append, on_entry_every=100) == (COUNT, [])
    assert [g[1:] for g in groups_seen] == [(255, True), (255, True), (190, True)]  # type: ignore[index]
    assert progress == list(range(100, COUNT + 1, 100))  # the same calls as entry by entry


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        (30 + 20 + 100, "CRC-32 mismatch"),  # a byte of the data
        (30 + 5, "name"),  # a byte of the local header's name
        (14, "local header CRC-32 differs"),  # the local header's CRC-32 field
        (22, "local header sizes differ"),  # its size
        (0, "bad local header signature"),
    ],
)
@pytest.mark.parametrize("index", [0, 300, COUNT - 1])
def test_each_fault_inside_a_group_is_found_and_named(
    tmp_path: Path, groups_seen: list, index: int, where: int, problem: str
) -> None:
    path = tmp_path / "a.zip"
    entry_names = write_plain(path)
    flip(path, header_offset(path, entry_names[index]) + where)
    checked, problems = verify_zip(path)
    assert checked == COUNT
    assert [p.path for p in problems] == [entry_names[index]]
    assert problem in problems[0].problem
    assert any(g is not None and not g[2] for g in groups_seen)  # the group was sent to the long way


def test_a_local_header_with_an_extra_field_goes_the_long_way_and_passes(tmp_path: Path, groups_seen: list) -> None:
    """Only byte-for-byte equal headers pass at once; a header the long way accepts is no problem."""
    path = tmp_path / "a.zip"
    entry_names = write_plain(path)
    flip(path, header_offset(path, entry_names[10]) + 10)  # its time: not judged, but not equal either
    assert verify_zip(path) == (COUNT, [])
    assert groups_seen[0] is not None and groups_seen[0][2] is False


def test_a_signature_inside_a_name_is_read_record_by_record(tmp_path: Path, groups_seen: list) -> None:
    path = tmp_path / "a.zip"
    entry_names = names()
    entry_names[5] = "W/Bank/PK\x01\x02 odd.bin"
    write_plain(path, entry_names)
    assert verify_zip(path) == (COUNT, [])
    assert groups_seen == [None]  # the split did not hold: the rest one by one


def test_data_running_into_the_directory_is_found(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    entry_names = write_plain(path)
    with zipfile.ZipFile(path) as zf:
        last = zf.getinfo(entry_names[-1])
        cd_offset = zf.start_dir
    # The last entry claims 100 bytes more than it has, in both records: it would end inside the directory.
    size = struct.pack("<I", last.file_size + 100)
    with open(path, "r+b") as f:
        for offset in (last.header_offset + 18, last.header_offset + 22):
            f.seek(offset)
            f.write(size)
        directory = f.seek(cd_offset) and f.read()
        at = directory.rfind(b"PK\x01\x02")
        for field in (20, 24):
            f.seek(cd_offset + at + field)
            f.write(size)
    checked, problems = verify_zip(path)
    assert [p.path for p in problems] == [entry_names[-1]]
    assert "central directory" in problems[0].problem


def test_a_stop_request_is_asked_before_each_group(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    write_plain(path)
    asked = 0

    def should_stop() -> bool:
        nonlocal asked
        asked += 1
        return asked > 1

    checked, problems = verify_zip(path, should_stop=should_stop)
    assert checked == 255
    assert problems == [ZipProblem("", "verification stopped before the end")]
