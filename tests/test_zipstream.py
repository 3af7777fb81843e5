"""jobs.zip.writer: archives it writes read back byte for byte, and the verifier finds the damage."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import shutil
import struct
import subprocess
import threading
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from jobs.backup.backup import read_back as backup_read_back
from jobs.zip.writer import EntryResult, ZipWriter

COMMENT = b"CloudCoin wallet backup: Wallet, 2025-03-14"
MTIME = time.mktime((2025, 3, 14, 15, 9, 26, 0, 0, -1))
BIG = (3 << 20) + 12345  # over the 1 MiB single-read limit: streamed in chunks
BIG_CHUNK = os.urandom(700_000)  # two make a stream over 1 MiB


class TinyZip64Writer(ZipWriter):
    """Every size and offset from 1,000 bytes up takes the ZIP64 path, without writing 4 GiB."""

    _ZIP64_LIMIT = 1000


class FullDisk(io.FileIO):
    """A file that runs out of space once it would grow past `limit` bytes."""

    limit = 1 << 60

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


class ShortThenFull(io.FileIO):
    """A raw file whose first write goes out only halfway and whose every later write fails (ENOSPC)."""

    writes = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        if self.writes > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        with memoryview(data) as view:
            return super().write(view[: len(view) // 2]) or 0


def unzip_test(path: Path) -> None:
    if shutil.which("unzip") is None:
        pytest.skip("Info-ZIP unzip is not installed, so `unzip -t` cannot be run")
    result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout


def make_files(root: Path) -> dict[str, bytes]:
    """Source files on disk: a coin-sized random file, text, an empty file, a big file."""
    contents = {
        "coin.bin": os.urandom(439),
        "notes.txt": b"Symbol,Task ID,Date & Time\n" * 200,
        "empty.bin": b"",
        "big.bin": os.urandom(BIG // 2) + b"\x00" * (BIG - BIG // 2),
        "transactions.csv": b"CC,1a2b3c,2025-01-01 10:00:00,Deposit,1,,Bench,1\n" * 4000,  # 200 KB
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return contents


def write_sample(
    path: Path, src: Path, writer_class: type[ZipWriter] = ZipWriter, *, long_streams: bool = True
) -> dict[str, bytes]:
    """An archive with every kind of entry; returns what each file entry must contain."""
    files = make_files(src)
    expected: dict[str, bytes] = {}
    with open(path, "wb") as out, writer_class(out, spool_dir=path.parent) as writer:
        writer.add_dir("Wallet", mtime=MTIME)
        writer.add_dir("Wallet/Bank/", mtime=MTIME)
        writer.add_dir("Wallet/Trash", mtime=MTIME)  # an empty folder survives as an entry
        for name, compress in [
            ("coin.bin", False), ("notes.txt", True), ("empty.bin", False), ("big.bin", False),
        ]:  # fmt: skip
            writer.add_file(f"Wallet/Bank/{name}", src / name, compress=compress)
            expected[f"Wallet/Bank/{name}"] = files[name]
        writer.add_file("Wallet/big-deflated.bin", src / "big.bin", compress=True, mtime=MTIME)
        expected["Wallet/big-deflated.bin"] = files["big.bin"]
        writer.add_file("Wallet/transactions.csv", src / "transactions.csv", compress=True)
        expected["Wallet/transactions.csv"] = files["transactions.csv"]
        # With an mtime given there is no fstat: over 64 KiB, the file takes the streamed path.
        writer.add_file("Wallet/streamed.csv", src / "transactions.csv", compress=True, mtime=MTIME)
        expected["Wallet/streamed.csv"] = files["transactions.csv"]
        unicode_name = "Wallet/Bank/1,000 CloudCoin #7998 'Für Ärger – ☃'.bin"
        writer.add_bytes(unicode_name, b"snow" * 50, compress=False, mtime=MTIME)
        expected[unicode_name] = b"snow" * 50
        writer.add_bytes("Wallet/empty-deflated.txt", b"", compress=True, mtime=MTIME)
        expected["Wallet/empty-deflated.txt"] = b""
        chunks = [b'{"entries": [', b"", b'"x", ' * 100_000, b'"y"]}']
        writer.add_stream("small-manifest.json", iter(chunks), compress=True, mtime=MTIME)
        expected["small-manifest.json"] = b"".join(chunks)
        if long_streams:  # over 1 MiB: streamed behind a header patched afterwards
            chunks = [b"line %d\n" % i for i in range(150_000)]
            writer.add_stream("backup-manifest.json", iter(chunks), compress=True, mtime=MTIME)
            expected["backup-manifest.json"] = b"".join(chunks)
            writer.add_stream("stored-stream.bin", [BIG_CHUNK] * 2, compress=False, mtime=MTIME)
            expected["stored-stream.bin"] = BIG_CHUNK * 2
        writer.close(comment=COMMENT)
    return expected


@pytest.fixture
def sample(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    path = tmp_path / "sample.zip"
    return path, write_sample(path, tmp_path / "src")


def data_offset(path: Path, name: str) -> int:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


# -- writing ----------------------------------------------------------------------------------


def test_round_trip_through_zipfile_is_byte_exact(sample: tuple[Path, dict[str, bytes]]) -> None:
    path, expected = sample
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.comment == COMMENT
        files = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
        dirs = [i.filename for i in zf.infolist() if i.is_dir()]
    assert files == expected
    assert dirs == ["Wallet/", "Wallet/Bank/", "Wallet/Trash/"]


def test_entries_carry_unix_modes_utf8_flag_and_methods(
    sample: tuple[Path, dict[str, bytes]],
) -> None:
    path, _ = sample
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    for info in infos.values():
        assert info.create_system == 3
        assert info.flag_bits & 0x800
        if info.is_dir():
            assert info.external_attr == (0o40700 << 16) | 0x10
            assert info.compress_type == zipfile.ZIP_STORED
        else:
            assert info.external_attr >> 16 == 0o100600
    assert infos["Wallet/Bank/coin.bin"].compress_type == zipfile.ZIP_STORED
    assert infos["Wallet/Bank/notes.txt"].compress_type == zipfile.ZIP_DEFLATED
    assert infos["Wallet/big-deflated.bin"].compress_type == zipfile.ZIP_DEFLATED
    assert infos["backup-manifest.json"].compress_type == zipfile.ZIP_DEFLATED
    assert infos["stored-stream.bin"].compress_type == zipfile.ZIP_STORED
    assert infos["Wallet/Bank/notes.txt"].compress_size < infos["Wallet/Bank/notes.txt"].file_size


def test_extracted_files_get_mode_0600(sample: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    path, _ = sample
    if shutil.which("unzip") is None:
        pytest.skip("Info-ZIP unzip is not installed: cannot check the modes it restores")
    subprocess.run(["unzip", "-q", str(path), "-d", str(tmp_path / "x")], check=True)
    coin = tmp_path / "x" / "Wallet" / "Bank" / "coin.bin"
    assert coin.stat().st_mode & 0o777 == 0o600


def test_unzip_t_accepts_the_archive(sample: tuple[Path, dict[str, bytes]]) -> None:
    unzip_test(sample[0])


@pytest.mark.parametrize("command", [["bsdtar", "-tf"], ["7z", "t"]], ids=["bsdtar", "7-zip"])
@pytest.mark.parametrize("writer_class", [ZipWriter, TinyZip64Writer], ids=["plain", "zip64"])
def test_other_common_readers_accept_the_archive(
    tmp_path: Path, command: list[str], writer_class: type[ZipWriter]
) -> None:
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed, so this reader cannot be tried")
    path = tmp_path / "a.zip"
    write_sample(path, tmp_path / "src", writer_class, long_streams=writer_class is ZipWriter)
    result = subprocess.run([*command, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_results_report_crc_and_sizes_and_on_chunk_sees_original_bytes(tmp_path: Path) -> None:
    files = make_files(tmp_path / "src")
    seen: dict[str, hashlib._Hash] = {}
    results: dict[str, EntryResult] = {}
    with open(tmp_path / "a.zip", "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        for name in files:
            digest = seen[name] = hashlib.sha256()
            results[name] = writer.add_file(name, tmp_path / "src" / name, compress=True, on_chunk=digest.update)
        assert writer.entries == len(files)
        assert writer.bytes_in == sum(len(d) for d in files.values())
        size = writer.close()
    assert size == (tmp_path / "a.zip").stat().st_size
    for name, data in files.items():
        assert seen[name].digest() == hashlib.sha256(data).digest()
        assert results[name].crc == zlib.crc32(data)
        assert results[name].size == len(data)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        for name, result in results.items():
            assert zf.getinfo(name).compress_size == result.compressed_size


def test_mtime_becomes_local_dos_time_clamped_to_the_format(tmp_path: Path) -> None:
    path = tmp_path / "t.zip"
    with open(path, "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        writer.add_bytes("now", b"1", compress=False, mtime=MTIME)
        writer.add_bytes("old", b"2", compress=False, mtime=0.0)
        writer.add_bytes("far", b"3", compress=False, mtime=2**33)
        writer.add_bytes("nonsense", b"4", compress=False, mtime=1e300)
        writer.close()
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("now").date_time == (2025, 3, 14, 15, 9, 26)
        assert zf.getinfo("old").date_time == (1980, 1, 1, 0, 0, 0)
        assert zf.getinfo("far").date_time == (2107, 12, 31, 23, 59, 58)
        assert zf.getinfo("nonsense").date_time == (2107, 12, 31, 23, 59, 58)


def test_add_file_takes_the_files_own_mtime_by_default(tmp_path: Path) -> None:
    src = tmp_path / "coin.bin"
    src.write_bytes(b"c" * 439)
    os.utime(src, (MTIME, MTIME))
    with open(tmp_path / "t.zip", "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        writer.add_file("coin.bin", src, compress=False)
        writer.close()
    with zipfile.ZipFile(tmp_path / "t.zip") as zf:
        assert zf.getinfo("coin.bin").date_time == (2025, 3, 14, 15, 9, 26)


def test_symlink_is_refused_and_the_archive_stays_valid(tmp_path: Path) -> None:
    (tmp_path / "real.bin").write_bytes(b"real")
    (tmp_path / "link.bin").symlink_to(tmp_path / "real.bin")
    path = tmp_path / "t.zip"
    with open(path, "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        with pytest.raises(OSError) as info:
            writer.add_file("link.bin", tmp_path / "link.bin", compress=False)
        assert info.value.errno == errno.ELOOP
        writer.add_file("real.bin", tmp_path / "real.bin", compress=False)
        writer.close()
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["real.bin"]
        assert zf.testzip() is None


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with open(tmp_path / "t.zip", "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        with pytest.raises(OSError) as info:
            writer.add_file("pipe", tmp_path / "pipe", compress=False)
        assert info.value.errno == errno.EINVAL
        writer.close()


def test_disk_full_while_streaming_cuts_the_entry_off_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(3 << 20))
    path = tmp_path / "t.zip"
    with FullDisk(path, "w") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        out.limit = 2 << 20
        writer.add_bytes("small", b"s", compress=False, mtime=MTIME)
        with pytest.raises(OSError) as info:
            writer.add_file("big.bin", tmp_path / "big.bin", compress=False)
        assert info.value.errno == errno.ENOSPC
        writer.add_bytes("after", b"a", compress=False, mtime=MTIME)
        writer.close()
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["small", "after"]
        assert zf.testzip() is None


def test_disk_full_on_a_buffered_write_breaks_the_writer(tmp_path: Path) -> None:
    with FullDisk(tmp_path / "t.zip", "w") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        out.limit = 100_000
        with pytest.raises(OSError):
            for i in range(10_000):  # the 1 MiB buffer goes out somewhere in here
                writer.add_bytes(f"{i}.bin", os.urandom(439), compress=False, mtime=MTIME)
        with pytest.raises(ValueError, match="broken"):
            writer.add_bytes("more", b"m", compress=False, mtime=MTIME)
        with pytest.raises(ValueError, match="broken"):
            writer.close()
        assert "broken" in repr(writer)


def test_failed_stream_is_cut_off_and_the_archive_stays_valid(tmp_path: Path) -> None:
    def broken() -> object:
        yield b"x" * (2 << 20)
        raise RuntimeError("spool file vanished")

    path = tmp_path / "t.zip"
    with open(path, "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        writer.add_bytes("before", b"b", compress=False, mtime=MTIME)
        with pytest.raises(RuntimeError):
            writer.add_stream("manifest.json", broken(), compress=True, mtime=MTIME)  # type: ignore[arg-type]
        writer.add_bytes("after", b"a", compress=False, mtime=MTIME)
        assert writer.entries == 2
        writer.close()
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["before", "after"]
        assert zf.testzip() is None
    assert read_back(path) == (2, [])


@pytest.mark.parametrize("name", ["", "/etc/passwd", "..", "../up", "a/../../up", "a/..", "back\\slash", "nul\x00byte"])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    with open(tmp_path / "t.zip", "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        with pytest.raises(ValueError):
            writer.add_bytes(name, b"x", compress=False, mtime=MTIME)
        writer.add_bytes("a..b/c..", b"x", compress=False, mtime=MTIME)  # dots inside names are fine
        writer.close()


def test_a_short_write_then_a_failed_one_surfaces_the_failure_and_abort_stays_quiet(tmp_path: Path) -> None:
    with ShortThenFull(tmp_path / "t.zip", "w") as out:
        writer = ZipWriter(out, spool_dir=tmp_path)
        with pytest.raises(OSError) as info:
            for i in range(5_000):  # the 1 MiB buffer goes out somewhere in here
                writer.add_bytes(f"{i}.bin", os.urandom(439), compress=False, mtime=MTIME)
        assert info.value.errno == errno.ENOSPC
        assert out.writes == 2  # the retry of the short write is what failed
        writer.abort()  # no BufferError from a view left on the buffer: the ENOSPC is the error
        assert "closed" in repr(writer)
    assert sorted(os.listdir(tmp_path)) == ["t.zip"]


@pytest.mark.parametrize("writer_class", [ZipWriter, TinyZip64Writer], ids=["plain", "zip64"])
def test_add_bytes_fast_writes_what_add_bytes_writes(tmp_path: Path, writer_class: type[ZipWriter]) -> None:
    entries = [
        ("Wallet/Bank/1 CloudCoin #1 'x'.bin", os.urandom(439), False),
        ("Wallet/Bank/1,000 CloudCoin #7998 'Für Ärger – ☃'.bin", os.urandom(455), False),
        ("Wallet/notes.txt", b"Symbol,Task ID\n" * 300, True),  # deflated: the general path
        ("Wallet/empty.bin", b"", False),
        ("Wallet/big.bin", os.urandom((1 << 20) + 7), False),  # over the buffer: the general path
        ("Wallet/a..b.bin", b"dots inside a name are fine", False),
    ]
    archives = []
    for fast in (False, True):
        path = tmp_path / f"{fast}.zip"
        with open(path, "wb") as out, writer_class(out, spool_dir=tmp_path) as writer:
            for i, (name, data, compress) in enumerate(entries):
                mtime = MTIME + 2 * (i % 3)
                if fast:
                    assert writer.add_bytes_fast(name, data, compress=compress, mtime=mtime) is None
                else:
                    writer.add_bytes(name, data, compress=compress, mtime=mtime)
            assert writer.entries == len(entries)
            assert writer.bytes_in == sum(len(data) for _, data, _ in entries)
            writer.close(comment=COMMENT)
        archives.append(path.read_bytes())
    assert archives[0] == archives[1]
    assert read_back(tmp_path / "True.zip") == (len(entries), [])


#: what the writer refuses as an entry name, each way in (undecodable too)
UNSAFE_NAMES = ["", "/etc/passwd", "..", "../up", "a/../../up", "a/..", "back\\slash", "nul\x00byte", "\udcff.bin"]


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_add_bytes_fast_refuses_what_add_bytes_refuses(tmp_path: Path, name: str) -> None:
    with open(tmp_path / "t.zip", "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        with pytest.raises(ValueError):
            writer.add_bytes(name, b"x", compress=False, mtime=MTIME)
        with pytest.raises(ValueError):
            writer.add_bytes_fast(name, b"x", compress=False, mtime=MTIME)
        assert writer.entries == 0
        writer.abort()
        with pytest.raises(ValueError, match="closed"):
            writer.add_bytes_fast("ok", b"x", compress=False, mtime=MTIME)


def test_closed_or_aborted_writer_refuses_more_entries(tmp_path: Path) -> None:
    with open(tmp_path / "t.zip", "wb") as out:
        writer = ZipWriter(out, spool_dir=tmp_path)
        writer.add_bytes("a", b"a", compress=False, mtime=MTIME)
        writer.abort()
        with pytest.raises(ValueError):
            writer.add_bytes("b", b"b", compress=False, mtime=MTIME)
        with pytest.raises(ValueError):
            writer.close()
        writer.abort()  # twice is harmless
        assert "closed" in repr(writer)
    assert sorted(os.listdir(tmp_path)) == ["t.zip"]  # no spool file left behind


def test_a_raw_file_descriptor_works_as_output(tmp_path: Path) -> None:
    path = tmp_path / "t.zip"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        writer = ZipWriter(fd, spool_dir=tmp_path)
        writer.add_bytes("a.txt", b"abc" * 1000, compress=True, mtime=MTIME)
        size = writer.close()
        os.fsync(fd)
    finally:
        os.close(fd)
    assert size == path.stat().st_size
    with zipfile.ZipFile(path) as zf:
        assert zf.read("a.txt") == b"abc" * 1000


def test_central_directory_bigger_than_the_buffer_is_spooled(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    names = [f"Wallet/Bank/{i:05} CloudCoin #{i} '{'x' * 40}'.bin" for i in range(20_000)]
    with open(path, "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        for i, name in enumerate(names):
            writer.add_bytes(name, i.to_bytes(4, "big"), compress=False, mtime=MTIME)
        writer.close()
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == names
        assert zf.read(names[-1]) == (19_999).to_bytes(4, "big")


# -- ZIP64 ------------------------------------------------------------------------------------


def test_zip64_by_entry_count(tmp_path: Path) -> None:
    path = tmp_path / "count.zip"
    count = 70_000
    with open(path, "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        writer.add_dir("W", mtime=MTIME)
        for i in range(1, count):
            writer.add_bytes(f"W/{i}.bin", i.to_bytes(3, "big"), compress=False, mtime=MTIME)
        writer.close()
    tail = path.read_bytes()[-22 - 20 - 56 :]
    assert tail[:4] == b"PK\x06\x06" and tail[56:60] == b"PK\x06\x07" and tail[76:80] == b"PK\x05\x06"
    assert struct.unpack("<H", tail[76 + 10 : 76 + 12])[0] == 0xFFFF
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert len(infos) == count
        assert zf.read("W/69999.bin") == (69_999).to_bytes(3, "big")
    assert read_back(path) == (count, [])
    unzip_test(path)


def test_zip64_by_size_and_offset_with_a_lowered_limit(tmp_path: Path) -> None:
    path = tmp_path / "z64.zip"
    # Streams over 1 MiB get no ZIP64 room (add_stream), so they cannot pass a 1,000-byte limit.
    expected = write_sample(path, tmp_path / "src", TinyZip64Writer, long_streams=False)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()} == expected
        big = zf.getinfo("Wallet/Bank/big.bin")
        assert big.extract_version == 45 and big.file_size == BIG
    with open(path, "rb") as f:
        f.seek(-22 - len(COMMENT), os.SEEK_END)
        end = f.read(22)
    assert struct.unpack("<I", end[16:20])[0] == 0xFFFFFFFF  # offset lives in the ZIP64 record
    assert read_back(path) == (len(expected) + 3, [])
    unzip_test(path)


def raw_data(path: Path, name: str) -> bytes:
    """The entry's data as stored in the archive (deflated or not)."""
    with zipfile.ZipFile(path) as zf:
        size = zf.getinfo(name).compress_size
    with open(path, "rb") as f:
        f.seek(data_offset(path, name))
        return f.read(size)


@pytest.mark.parametrize("size", [200_000, 3 << 20], ids=["gathered", "streamed"])
def test_add_stream_deflates_at_the_level_asked(tmp_path: Path, size: int) -> None:
    content = b"".join(b'{"path":"W/Bank/%d.bin","size":407}\n' % i for i in range(size // 30))[:size]
    path = tmp_path / "levels.zip"
    with open(path, "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        for level in (1, 9):
            writer.add_stream(f"l{level}", [content[i : i + 65536] for i in range(0, size, 65536)],
                              compress=True, mtime=MTIME, level=level)  # fmt: skip
        writer.add_stream("default", [content], compress=True, mtime=MTIME)
        writer.close()
    for name, level in (("l1", 1), ("l9", 9), ("default", 6)):
        co = zlib.compressobj(level, zlib.DEFLATED, -15)
        assert raw_data(path, name) == co.compress(content) + co.flush(), name
    assert len(raw_data(path, "l1")) > len(raw_data(path, "l9"))
    with zipfile.ZipFile(path) as zf:
        assert all(zf.read(name) == content for name in ("l1", "l9", "default"))


def test_stream_that_outgrows_a_header_without_zip64_room_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.zip"
    with open(path, "wb") as out, TinyZip64Writer(out, spool_dir=tmp_path) as writer:
        writer.add_bytes("a", b"a", compress=False, mtime=MTIME)
        with pytest.raises(ValueError, match="4 GiB"):
            writer.add_stream("m.json", [b"m" * 1000] * 2000, compress=False, mtime=MTIME)
        writer.close()
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["a"]


# -- reading back ------------------------------------------------------------------------------


def read_back(path: Path) -> tuple[int, list[tuple[str, str]]]:
    """The backup's read-back (jobs/backup/backup.py, on the server's reader): (entries read,
    [(entry, problem)]); a broken structure is the last problem."""
    return backup_read_back(path, threading.Event())


def test_read_back_of_a_clean_archive_counts_every_entry(sample: tuple[Path, dict[str, bytes]]) -> None:
    path, expected = sample
    assert read_back(path) == (len(expected) + 3, [])  # and the three directories


@pytest.mark.parametrize("name", ["Wallet/Bank/coin.bin", "Wallet/Bank/big.bin"])
def test_read_back_reports_a_flipped_stored_byte_with_its_entry(
    sample: tuple[Path, dict[str, bytes]], name: str
) -> None:
    path, expected = sample
    flip_byte(path, data_offset(path, name) + len(expected[name]) // 2)
    checked, problems = read_back(path)
    assert checked == len(expected) + 3
    assert [p[0] for p in problems] == [name]
    assert "CRC-32" in problems[0][1]


def test_read_back_reports_damaged_deflate_data_with_its_entry(sample: tuple[Path, dict[str, bytes]]) -> None:
    path, _ = sample
    flip_byte(path, data_offset(path, "Wallet/Bank/notes.txt") + 5)
    _, problems = read_back(path)
    assert [p[0] for p in problems] == ["Wallet/Bank/notes.txt"]


def test_read_back_refuses_a_local_name_that_differs_from_the_directory(
    sample: tuple[Path, dict[str, bytes]],
) -> None:
    path, _ = sample
    name = "Wallet/Bank/coin.bin"
    flip_byte(path, data_offset(path, name) - 1)  # last byte of the local header's name
    _, problems = read_back(path)
    assert problems == [(name, "local header name differs from the central directory")]


@pytest.mark.parametrize("keep", [0, 10, 1000, 0.5, 0.999])
def test_read_back_of_a_truncated_archive_gives_problems(sample: tuple[Path, dict[str, bytes]], keep: float) -> None:
    path, _ = sample
    size = path.stat().st_size
    os.truncate(path, int(size * keep) if isinstance(keep, float) else keep)
    assert read_back(path)[1]


def test_read_back_of_a_damaged_central_directory_gives_problems(sample: tuple[Path, dict[str, bytes]]) -> None:
    path, _ = sample
    with zipfile.ZipFile(path) as zf:
        cd_offset = zf.start_dir
    flip_byte(path, cd_offset + 46 * 3 + 100)  # somewhere inside the directory's records
    assert read_back(path)[1]


def test_read_back_of_something_else_than_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "no.zip"
    path.write_bytes(os.urandom(5000))
    checked, problems = read_back(path)
    assert checked == 0 and problems
    with pytest.raises(FileNotFoundError):
        read_back(tmp_path / "missing.zip")


def test_read_back_accepts_local_headers_that_differ_only_where_it_does_not_check(
    sample: tuple[Path, dict[str, bytes]],
) -> None:
    """The fast lane compares whole header bytes; a difference it does not judge (the time) is not a problem."""
    path, _ = sample
    with zipfile.ZipFile(path) as zf:
        header_offset = zf.getinfo("Wallet/Bank/coin.bin").header_offset
    flip_byte(path, header_offset + 10)  # the local header's time field
    assert read_back(path)[1] == []
    flip_byte(path, header_offset + 14)  # its CRC-32: now it is a problem
    _, problems = read_back(path)
    assert problems == [("Wallet/Bank/coin.bin", "local header CRC-32 differs from the central directory")]


def test_read_back_catches_a_deflate_bomb_claiming_a_small_size(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with open(path, "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        writer.add_bytes("zeros", b"\x00" * (8 << 20), compress=True, mtime=MTIME)
        writer.close()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("zeros")
        cd_offset = zf.start_dir
    assert info.compress_size < 20_000
    # Shrink the recorded size in both headers: inflating must stop early, not hold 8 MiB.
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 22)
        f.write(struct.pack("<I", 1000))
        f.seek(cd_offset + 24)
        f.write(struct.pack("<I", 1000))
    _, problems = read_back(path)
    assert [p[0] for p in problems] == ["zeros"]
    assert "more than" in problems[0][1]


def test_read_back_survives_random_damage(tmp_path: Path) -> None:
    """However an archive is damaged, reading it gives problems, never another exception."""
    path = tmp_path / "a.zip"
    with open(path, "wb") as out, TinyZip64Writer(out, spool_dir=tmp_path) as writer:
        writer.add_dir("W", mtime=MTIME)
        for i in range(6):
            writer.add_bytes(f"W/{i}.bin", os.urandom(300 + 200 * i), compress=False, mtime=MTIME)
        writer.add_bytes("W/t.txt", b"text " * 500, compress=True, mtime=MTIME)
        writer.close(comment=b"c")
    original = path.read_bytes()
    rng = random.Random(9)
    damaged_ones = 0
    for _ in range(400):
        damaged = bytearray(original)
        if rng.random() < 0.7:
            at = rng.randrange(len(damaged))
            damaged[at : at + 4] = rng.choice([b"\xff" * 4, b"\0" * 4, rng.randbytes(4)])
        else:
            del damaged[rng.randrange(len(damaged)) :]
        path.write_bytes(damaged)
        _, problems = read_back(path)  # never raises
        damaged_ones += bool(problems)
    assert damaged_ones > 200


@pytest.mark.parametrize("writer_class", [ZipWriter, TinyZip64Writer], ids=["plain", "zip64"])
def test_add_stored_batch_writes_what_add_bytes_writes(tmp_path: Path, writer_class: type[ZipWriter]) -> None:
    entries = [
        ("Wallet/Bank/1 CloudCoin #1 'x'.bin", os.urandom(439)),
        ("Wallet/Bank/1,000 CloudCoin #7998 'Für Ärger – ☃'.bin", os.urandom(455)),
        ("Wallet/empty.bin", b""),
        ("Wallet/big.bin", os.urandom((1 << 20) + 7)),  # over the buffer: the general path, in order
        ("Wallet/a..b.bin", b"dots inside a name are fine"),
        *((f"Wallet/Bank/{i}.bin", os.urandom(439)) for i in range(600)),
    ]
    mtimes = [MTIME + 2 * (i % 3) for i in range(len(entries))]
    archives = []
    for batched in (False, True):
        path = tmp_path / f"{batched}.zip"
        with open(path, "wb") as out, writer_class(out, spool_dir=tmp_path) as writer:
            if batched:
                for at in range(0, len(entries), 256):
                    part = entries[at : at + 256]
                    writer.add_stored_batch([n for n, _ in part], [d for _, d in part], mtimes[at : at + 256])
            else:
                for (name, data), mtime in zip(entries, mtimes, strict=True):
                    writer.add_bytes(name, data, compress=False, mtime=mtime)
            assert (writer.entries, writer.bytes_in) == (len(entries), sum(len(data) for _, data in entries))
            writer.close(comment=COMMENT)
        archives.append(path.read_bytes())
    assert archives[0] == archives[1]
    assert read_back(tmp_path / "True.zip") == (len(entries), [])


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_add_stored_batch_refuses_what_add_bytes_refuses_and_keeps_what_came_before(tmp_path: Path, name: str) -> None:
    path = tmp_path / "t.zip"
    with open(path, "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        with pytest.raises(ValueError):
            writer.add_stored_batch(["first.bin", name, "never.bin"], [b"1", b"x", b"3"], [MTIME] * 3)
        assert writer.entries == 1
        writer.add_stored_batch(["after.bin"], [b"2"], [MTIME])
        writer.close()
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["first.bin", "after.bin"]
        assert zf.testzip() is None
    assert read_back(path) == (2, [])


def test_add_stored_batch_refuses_lists_that_do_not_pair_up_and_a_closed_writer(tmp_path: Path) -> None:
    with open(tmp_path / "t.zip", "wb") as out, ZipWriter(out, spool_dir=tmp_path) as writer:
        with pytest.raises(ValueError):
            writer.add_stored_batch(["a.bin", "b.bin"], [b"a"], [MTIME, MTIME])
        writer.abort()
        with pytest.raises(ValueError, match="closed"):
            writer.add_stored_batch(["ok.bin"], [b"x"], [MTIME])
