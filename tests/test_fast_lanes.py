"""The reader's fast lane (`ZipReader.rows`) and the checker's fast branch skip no check.

The lane takes plain stored entries in a row once a 12-byte directory-record prefix is known (this
server's, or one learnt from an entry the full path passed); the checker's fast branch passes this
server's own names with a few C-level tests instead of `entry_name_problem`. Each test here breaks one
thing either of them must notice, in a real backup or a crafted archive, and expects the answer of
the full checks.
"""

from __future__ import annotations

import shutil
import stat
import struct
import subprocess
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from jobs.restore.verify import verify_archive
from jobs.zip.reader import ArchiveError, Record, ZipReader
from tests.test_restore import backup, make_wallet, restore_call
from tests.test_restore_fast_path import manifest_text, restored, verified, write


def rows_and_records(path: Path) -> tuple[list[tuple[Any, ...]], list[Record]]:
    with ZipReader(path) as reader:
        records = list(reader.records())
        rows = []
        for row in reader.rows():
            data = row[9]
            if data is not None and not isinstance(data, bytes):
                data = b"".join(data)
            rows.append((*row[:9], data, row[10]))
    return rows, records


def assert_rows_match(path: Path) -> None:
    """Every row carries its directory record's fields and the data zipfile reads, without a problem."""
    rows, records = rows_and_records(path)
    assert [tuple(r) for r in records] == [row[:9] for row in rows]
    with zipfile.ZipFile(path) as archive:
        assert [row[9] for row in rows] == [archive.read(info) for info in archive.infolist()]
    assert all(row[10] is None for row in rows)


def coin_archive(tmp_path: Path, count: int = 40) -> Path:
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for n in range(count):
            archive.writestr(f"W/Bank/{n}.bin", bytes([n]) * 439)
    return path


def test_rows_match_the_directory_for_a_foreign_writer(tmp_path: Path) -> None:
    # zipfile's records open with another prefix (no UTF-8 flag): the first entry teaches it to the lane
    assert_rows_match(coin_archive(tmp_path))


def test_rows_match_the_directory_for_info_zip(tmp_path: Path) -> None:
    if shutil.which("zip") is None:
        pytest.skip("zip is not installed (the CI installs it with apt-get; see .ci/run)")
    folder = tmp_path / "W" / "Bank"
    folder.mkdir(parents=True)
    for n in range(30):
        (folder / f"{n}.bin").write_bytes(bytes([n]) * 439)
    subprocess.run(["zip", "-r", "-q", "-0", str(tmp_path / "i.zip"), "W"], cwd=tmp_path, check=True)
    assert_rows_match(tmp_path / "i.zip")


def central_record(path: Path, name: str) -> int:
    raw = path.read_bytes()
    at = raw.rfind(name.encode()) - 46
    assert raw[at : at + 4] == b"PK\x01\x02"
    return at


def patched(path: Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))


def refusal(path: Path) -> ArchiveError:
    with pytest.raises(ArchiveError) as caught, ZipReader(path) as reader:
        list(reader.rows())
    return caught.value


@pytest.mark.parametrize(
    ("field", "offset", "data", "problem"),
    [
        ("crc", 16, struct.pack("<I", 0), "local header CRC-32 differs from the central directory"),
        ("sizes", 20, struct.pack("<II", 400, 400), "local header sizes differ from the central directory"),
        ("name", 46 + 2, b"X", "local header name differs from the central directory"),
        ("offset", 42, struct.pack("<I", 0), "entry overlaps the one before it, or is out of file order"),
        ("method", 10, struct.pack("<H", 8), "local header method or flags differ from the central directory"),
    ],
)
def test_the_lane_compares_the_directory_with_the_local_header(
    tmp_path: Path, field: str, offset: int, data: bytes, problem: str
) -> None:
    path = coin_archive(tmp_path)
    patched(path, central_record(path, "W/Bank/20.bin") + offset, data)
    assert refusal(path).problem == problem, field


def test_the_lane_counts_entries_against_the_end_record(tmp_path: Path) -> None:
    path = coin_archive(tmp_path)
    size = path.stat().st_size
    patched(path, size - 14, struct.pack("<HH", 39, 39))
    assert refusal(path).problem == "central directory holds more entries than the 39 its end record claims"


def test_a_directory_comment_takes_the_entry_off_the_lane(tmp_path: Path) -> None:
    path = tmp_path / "c.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for n in range(10):
            info = zipfile.ZipInfo(f"W/{n}.bin")
            info.comment = b"a comment" if n == 5 else b""
            archive.writestr(info, bytes([n]) * 439)
    assert_rows_match(path)


# -- on this server's own backups, through verify and restore ------------------------------------------


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("central-crc", "local header CRC-32 differs from the central directory"),
        ("central-name", "local header name differs from the central directory"),
        ("symlink", "is a symbolic link"),
        ("device", "is a special file"),
        ("encrypted", "is encrypted with ZIP encryption"),
        ("central-method", "local header method or flags differ from the central directory"),
    ],
)
async def test_a_backup_with_one_directory_record_changed(
    client: TestClient, data_dir: Path, tmp_path: Path, kind: str, problem: str
) -> None:
    wallet = await make_wallet(client, data_dir)
    path = await backup(client, wallet, tmp_path / "backups")
    with zipfile.ZipFile(path) as archive:
        coin = next(i for i in archive.infolist() if i.filename.endswith(".bin"))
    at = central_record(path, coin.filename)
    local = coin.header_offset
    edits = {
        "central-crc": [(at + 16, struct.pack("<I", 0))],
        "central-name": [(at + 46 + len(coin.filename) - 5, b"X")],
        "symlink": [(at + 40, struct.pack("<H", stat.S_IFLNK | 0o777))],
        "device": [(at + 40, struct.pack("<H", stat.S_IFCHR | 0o600))],
        "encrypted": [(at + 8, struct.pack("<H", 0x801)), (local + 6, struct.pack("<H", 0x801))],
        "central-method": [(at + 10, struct.pack("<H", 8))],
    }[kind]
    for offset, data in edits:
        patched(path, offset, data)
    ok, problems, _ = verified(path)
    assert not ok and any(problem in p["problem"] for p in problems), problems
    location = tmp_path / "location"
    location.mkdir()
    status, body = await restore_call(client, zip_path=str(path), location=str(location), new_name="Back")
    assert status == 400 and problem in body["error"], body
    assert list(location.iterdir()) == []


# -- the checker's fast branch: names at its limits ------------------------------------------------------


def deep(parts: int) -> str:
    """A file name of `parts` parts under Hand/ (the file's own name is the last part)."""
    return "Hand/" + "d/" * (parts - 2) + "x.bin"


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        (deep(64), True),
        (deep(65), False),  # 64 '/': the old quick test let it through, entry_name_problem does not
        ("Hand/" + "n" * 122, True),  # 127 characters: the fast branch
        ("Hand/" + "n" * 123, True),  # 128: the general path
        ("Hand/" + "n" * 250 + ".bin", True),
        ("Hand/" + "n" * 252 + ".bin", False),  # a part over 255 bytes
    ],
)
def test_names_at_the_fast_branchs_limits(tmp_path: Path, name: str, accepted: bool) -> None:
    entries: list[Any] = [("Hand/", None), ("Hand/Bank/", None), ("Hand/Fracked/", None), (name, b"coin")]
    listed = [(n, d) for n, d in entries]
    fast = write(tmp_path / "fast.zip", entries, manifest_text(listed, compact=True))
    general = write(tmp_path / "general.zip", entries, manifest_text(listed, compact=False))
    assert verified(fast) == verified(general)
    assert verified(fast)[0] is accepted, verified(fast)
    fast_restore = restored(fast, tmp_path / "a")
    assert fast_restore == restored(general, tmp_path / "b")
    assert (fast_restore[0] == 200) is accepted, fast_restore


def test_verify_reports_progress_as_it_goes(tmp_path: Path) -> None:
    entries: list[Any] = [("Hand/", None), ("Hand/Bank/", None), ("Hand/Fracked/", None)]
    entries += [(f"Hand/Bank/{n}.bin", bytes([n % 256]) * 50) for n in range(700)]
    path = write(tmp_path / "p.zip", entries, manifest_text(entries, compact=True))
    reports: list[dict[str, Any]] = []
    body = verify_archive(path, cancel=threading.Event(), report=lambda **values: reports.append(values))
    assert body["ok"] and body["entries_checked"] == 704, body
    done = [r["done"] for r in reports if "done" in r]
    assert done[0] == 0 and done[-1] == 704
    assert any(0 < d < 704 for d in done), done  # reported while running, not only at both ends
    assert done == sorted(done)
