"""The restore's small files, written in batches by two threads (jobs/restore/filebatch.py), and the
extraction on top of it: every file, byte, mode and time as in the archive, the first failure named,
nothing written after a failure, no helper thread left."""

from __future__ import annotations

import os
import stat
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from jobs.models import JobFailed
from jobs.restore import extraction, filebatch, restore
from jobs.restore.filebatch import BATCH_BYTES, BATCH_FILES, FileBatch, FileError, write_files
from tests.conftest import coin_bytes
from tests.test_restore import build_archive

MTIME = 1_700_000_000.0


def helper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "restore-files"]


@pytest.fixture
def folder(tmp_path: Path) -> Any:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield tmp_path, fd
    os.close(fd)


def test_write_files_creates_each_file_new_0600_with_its_bytes_and_time(folder: Any) -> None:
    path, fd = folder
    items = [(f"{i}.bin", bytes([i]) * i, MTIME + i, f"W/{i}.bin") for i in range(5)]
    items.append(("no-time.txt", b"t", None, "W/no-time.txt"))
    assert write_files(fd, items) is None
    for i in range(5):
        st = (path / f"{i}.bin").stat()
        assert (path / f"{i}.bin").read_bytes() == bytes([i]) * i
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime == MTIME + i
    assert (path / "no-time.txt").read_bytes() == b"t"


def test_write_files_returns_the_first_failure_and_writes_nothing_after_it(folder: Any) -> None:
    path, fd = folder
    (path / "b.bin").write_bytes(b"there before")
    failure = write_files(fd, [("a.bin", b"a", None, "W/a.bin"), ("b.bin", b"b", None, "W/b.bin"),
                               ("c.bin", b"c", None, "W/c.bin")])  # fmt: skip
    assert isinstance(failure, FileError) and failure.name == "W/b.bin"
    assert isinstance(failure.error, FileExistsError)
    assert (path / "a.bin").read_bytes() == b"a"
    assert (path / "b.bin").read_bytes() == b"there before"  # never opened for writing
    assert not (path / "c.bin").exists()


def test_write_files_never_follows_a_link(folder: Any, tmp_path: Path) -> None:
    path, fd = folder
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    (path / "l.bin").symlink_to(outside)
    failure = write_files(fd, [("l.bin", b"x", None, "W/l.bin")])
    assert failure is not None and failure.name == "W/l.bin"
    assert not outside.exists()


def test_a_batch_writes_everything_in_halves_and_its_helper_ends_on_close(folder: Any) -> None:
    path, fd = folder
    batch = FileBatch()
    count = BATCH_FILES * 3 + 7
    for i in range(count):
        batch.add(fd, f"{i}.bin", str(i).encode(), MTIME, f"W/{i}.bin")
    # the full batches are written as they fill; the last 7 wait for flush()
    assert len(os.listdir(path)) == BATCH_FILES * 3
    assert len(helper_threads()) == 1
    batch.flush()
    assert sorted(os.listdir(path)) == sorted(f"{i}.bin" for i in range(count))
    assert all((path / f"{i}.bin").read_bytes() == str(i).encode() for i in range(count))
    batch.close()
    assert helper_threads() == []


def test_a_batch_is_written_at_its_byte_bound_and_when_the_folder_changes(folder: Any, tmp_path: Path) -> None:
    path, fd = folder
    (path / "sub").mkdir()
    sub_fd = os.open(path / "sub", os.O_RDONLY | os.O_DIRECTORY)
    batch = FileBatch()
    try:
        batch.add(fd, "small.bin", b"s", None, "W/small.bin")
        assert not (path / "small.bin").exists()
        batch.add(sub_fd, "other.bin", b"o", None, "W/sub/other.bin")  # another folder: the first is written
        assert (path / "small.bin").read_bytes() == b"s"
        batch.add(sub_fd, "big.bin", b"b" * BATCH_BYTES, None, "W/sub/big.bin")  # the byte bound: written now
        assert (path / "sub" / "other.bin").read_bytes() == b"o"
        assert (path / "sub" / "big.bin").stat().st_size == BATCH_BYTES
    finally:
        batch.close()
        os.close(sub_fd)


def test_flush_raises_the_first_failure_in_archive_order_after_both_halves_are_done(folder: Any) -> None:
    path, fd = folder
    names = [f"{i:03}.bin" for i in range(10)]
    (path / names[1]).write_bytes(b"taken")  # in the helper's half (the first five)
    (path / names[8]).write_bytes(b"taken")  # in this thread's half
    batch = FileBatch()
    try:
        for name in names:
            batch.add(fd, name, b"new", None, "W/" + name)
        with pytest.raises(FileError) as raised:
            batch.flush()
        assert raised.value.name == "W/001.bin"
        # each half stopped at its own failure, and both had stopped when flush() raised
        assert (path / names[0]).read_bytes() == b"new" and not (path / names[2]).exists()
        assert all((path / n).read_bytes() == b"new" for n in names[5:8]) and not (path / names[9]).exists()
    finally:
        batch.close()
    assert helper_threads() == []


def test_what_the_helper_raises_is_raised_by_flush_and_nothing_waits_forever(
    folder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, fd = folder
    real = filebatch.write_files

    def crash_in_the_helper(dir_fd: int, items: list[Any]) -> Any:
        if threading.current_thread().name == "restore-files":
            raise MemoryError("no room")
        return real(dir_fd, items)

    monkeypatch.setattr(filebatch, "write_files", crash_in_the_helper)
    batch = FileBatch()
    try:
        for i in range(4):
            batch.add(fd, f"{i}.bin", b"x", None, f"W/{i}.bin")
        started = time.monotonic()
        with pytest.raises(MemoryError):
            batch.flush()
        assert time.monotonic() - started < 5
    finally:
        batch.close()
    assert helper_threads() == []


# -- the extraction on top of it ----------------------------------------------------------------------


def many_files() -> dict[str, bytes]:
    files = {f"Bank/{i} CloudCoin #{i} 'x'.bin": coin_bytes(i) for i in range(1, BATCH_FILES * 2 + 45)}
    files |= {f"Fracked/{i} CloudCoin #{i} 'x'.bin": coin_bytes(i, 1) for i in range(1000, 1005)}
    files["Receipts/big.txt"] = os.urandom(3 << 20)  # over the reader's window: written chunk by chunk
    files["Receipts/2026/deep.txt"] = b"a receipt\n"
    files["Receipts/empty.txt"] = b""
    return files


def extract(archive: Path, location: Path) -> Path:
    plan = restore.RestorePlan(archive, location, "Hand")
    temp = location / restore.temp_name("j")
    restore.extract_archive(plan, temp, key=None, cancel=threading.Event(), report=lambda **_: None)
    return temp


def many_archive(tmp_path: Path, files: dict[str, bytes] | None = None) -> Path:
    files = many_files() if files is None else files
    return build_archive(tmp_path / "many.zip", files, dirs=("Bank/", "Fracked/", "Receipts/"))


def failed_extraction(archive: Path, location: Path) -> JobFailed:
    """The extraction's failure, once checked that it left nothing: no folder, no helper thread."""
    location.mkdir()
    with pytest.raises(JobFailed) as raised:
        extract(archive, location)
    assert os.listdir(location) == []
    assert helper_threads() == []
    return raised.value


def test_an_extraction_of_many_files_restores_every_byte_mode_and_time(tmp_path: Path) -> None:
    files = many_files()
    archive = many_archive(tmp_path, files)
    with zipfile.ZipFile(archive) as zf:
        times = {i.filename: time.mktime((*i.date_time, 0, 0, -1)) for i in zf.infolist()}
    location = tmp_path / "loc"
    location.mkdir()
    temp = extract(archive, location)
    found = {str(p.relative_to(temp)): p for p in temp.rglob("*") if p.is_file()}
    assert sorted(found) == sorted(files)
    for name, data in files.items():
        st = found[name].stat()
        assert found[name].read_bytes() == data, name
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime == times["Hand/" + name], name
    assert helper_threads() == []


def test_a_write_failing_in_a_batch_is_the_original_500_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = many_archive(tmp_path)
    real_open, real_write = os.open, os.write
    doomed: set[int] = set()  # the descriptor of coin 200, in the second batch of Bank

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if path == "200 CloudCoin #200 'x'.bin":
            doomed.add(fd)
        return fd

    def write(fd: int, data: Any) -> int:
        if fd in doomed:
            doomed.discard(fd)
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(filebatch.os, "open", open_)
    monkeypatch.setattr(filebatch.os, "write", write)
    failure = failed_extraction(archive, tmp_path / "loc")
    assert failure.http_status == 500
    assert failure.body["error"] == "Cannot write the restored wallet: No space left on device"


def test_a_name_taken_meanwhile_is_refused_as_a_collision_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = many_archive(tmp_path)
    real_open = os.open

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if path == "77 CloudCoin #77 'x'.bin":
            raise FileExistsError(17, "File exists")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(filebatch.os, "open", open_)
    failure = failed_extraction(archive, tmp_path / "loc")
    assert failure.http_status == 400
    assert "Hand/Bank/77 CloudCoin #77 'x'.bin" in str(failure.body)
    assert "collides with another entry" in str(failure.body)
    assert extraction.FILE_FLAGS == filebatch.FILE_FLAGS  # the big files' path opens them the same way


def test_short_writes_are_retried_until_every_byte_is_written(folder: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path, fd = folder
    real_write = os.write
    monkeypatch.setattr(filebatch.os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    assert write_files(fd, [("short.bin", b"0123456789", None, "W/short.bin")]) is None
    assert (path / "short.bin").read_bytes() == b"0123456789"
