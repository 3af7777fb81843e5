"""jobs/zip/reader.py: archives of every common archiver read the same, and every structural fault is refused."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest

from jobs.zip.reader import CHUNK, ArchiveError, EntryDamaged, ZipReader, decode_name


def make_tree(root: Path) -> Path:
    """A small wallet-like folder: coins, an empty file, an empty folder, a nested one, a big file."""
    wallet = root / "W"
    (wallet / "Bank").mkdir(parents=True)
    (wallet / "Fracked").mkdir()
    (wallet / "Empty" / "deeper").mkdir(parents=True)
    for n in range(5):
        (wallet / "Bank" / f"{n} CloudCoin.bin").write_bytes(os.urandom(439))
    (wallet / "Fracked" / "zero.bin").write_bytes(b"")
    (wallet / "transactions.csv").write_text("a,b,c\n" * 3000)
    (wallet / "big.dat").write_bytes(os.urandom(CHUNK + 12345))
    return wallet


def read_all(path: Path) -> dict[str, tuple[int, int, int, int, bytes | None]]:
    """name -> (size, CRC, external attributes, local header offset, data) through both passes."""
    found = {}
    with ZipReader(path) as reader:
        from_directory = [(decode_name(r), r.usize, r.crc, r.attr, r.offset) for r in reader.records()]
        for record, data, problem in reader.entries():
            assert problem is None, (decode_name(record), problem)
            if data is not None and not isinstance(data, bytes):
                data = b"".join(data)
            found[decode_name(record)] = (record.usize, record.crc, record.attr, record.offset, data)
    assert [(name, *found[name][:4]) for name, *_ in from_directory] == from_directory
    return found


def assert_same_as_zipfile(path: Path) -> None:
    found = read_all(path)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        assert list(found) == [info.filename for info in infos]
        for info in infos:
            size, crc, attr, offset, data = found[info.filename]
            assert (size, crc, attr, offset) == (info.file_size, info.CRC, info.external_attr, info.header_offset)
            assert data == archive.read(info)


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (the CI installs it with apt-get; see .ci/run)")
    return found


# -- archives of every archiver ----------------------------------------------------------------------


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_python_zipfile_archives(tmp_path: Path, compression: int) -> None:
    wallet = make_tree(tmp_path)
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", compression) as archive:
        for folder, dirs, files in os.walk(wallet):
            for name in sorted(dirs) + sorted(files):
                full = Path(folder) / name
                archive.write(full, full.relative_to(tmp_path))
    assert_same_as_zipfile(path)
    assert read_all(path)["W/Fracked/zero.bin"][4] == b""
    assert "W/Empty/deeper/" in read_all(path)


@pytest.mark.parametrize(
    "options", [["-r", "-q"], ["-r", "-q", "-0"], ["-r", "-q", "-fz"]], ids=["deflate", "store", "zip64"]
)
def test_info_zip_archives(tmp_path: Path, options: list[str]) -> None:
    zip_tool = tool("zip")
    make_tree(tmp_path)
    subprocess.run([zip_tool, *options, "a.zip", "W"], cwd=tmp_path, check=True)
    assert_same_as_zipfile(tmp_path / "a.zip")


def test_info_zip_streamed_archive_with_data_descriptors(tmp_path: Path) -> None:
    zip_tool = tool("zip")
    make_tree(tmp_path)
    names = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "W").rglob("*") if p.is_file())
    with open(tmp_path / "a.zip", "wb") as out:  # to a pipe: zip cannot seek back, so it writes descriptors
        zipped = subprocess.run([zip_tool, "-q", "-", *names], cwd=tmp_path, check=True, capture_output=True)
        out.write(zipped.stdout)
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert any(info.flag_bits & 0x08 for info in archive.infolist())
    assert_same_as_zipfile(tmp_path / "a.zip")


@pytest.mark.parametrize("options", ["zip:compression=store", "zip:compression=deflate"])
def test_bsdtar_archives(tmp_path: Path, options: str) -> None:
    bsdtar = tool("bsdtar")
    make_tree(tmp_path)
    subprocess.run(
        [bsdtar, "-c", "-f", "a.zip", "--format", "zip", "--options", options, "W"], cwd=tmp_path, check=True
    )
    assert_same_as_zipfile(tmp_path / "a.zip")


@pytest.mark.parametrize("level", ["-mx0", "-mx5"])
def test_7zip_archives(tmp_path: Path, level: str) -> None:
    sevenzip = tool("7zz")
    make_tree(tmp_path)
    subprocess.run([sevenzip, "a", "-tzip", level, "-bso0", "-bsp0", "a.zip", "W"], cwd=tmp_path, check=True)
    assert_same_as_zipfile(tmp_path / "a.zip")


def test_zip64_by_count(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for n in range(70_000):
            archive.writestr(f"W/{n}", b"")
    raw = path.read_bytes()
    assert raw[-22:-20] == b"PK" and struct.unpack_from("<H", raw, len(raw) - 12)[0] == 0xFFFF
    with ZipReader(path) as reader:
        assert reader.count == 70_000
        assert sum(1 for _ in reader.entries()) == 70_000


def zip64_by_size(path: Path, entries: list[tuple[bytes, bytes]]) -> Path:
    """Every size and offset in ZIP64 extra fields (all-ones in the records), and ZIP64 end records."""
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        crc = zlib.crc32(data)
        offset = len(out)
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(local_extra)
        )
        out += name + local_extra + data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            0x031E,
            45,
            0,
            0,
            0,
            0x21,
            crc,
            0xFFFFFFFF,
            0xFFFFFFFF,
            len(name),
            len(extra),
            0,
            0,
            0,
            0o100600 << 16,
            0xFFFFFFFF,
        )
        central += name + extra
    cd_offset = len(out)
    out += central
    end64 = len(out)
    out += struct.pack(
        "<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 45, 0, 0, len(entries), len(entries), len(central), cd_offset
    )
    out += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(bytes(out))
    return path


def test_zip64_by_size(tmp_path: Path) -> None:
    path = zip64_by_size(
        tmp_path / "z64.zip", [(b"W/a.bin", b"a" * 439), (b"W/empty", b""), (b"W/big", os.urandom(CHUNK + 1))]
    )
    assert_same_as_zipfile(path)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_big_entry_is_never_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: int) -> None:
    big = os.urandom(6 * CHUNK)
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", compression) as zf:
        zf.writestr("big.bin", big)  # first: the window is refilled at its header
        zf.writestr("small-after.txt", b"a" * 100)
        zf.writestr("big-too.bin", big)
    reads: list[int] = []
    real_pread = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        reads.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", pread)
    got: dict[str, bytes] = {}
    with ZipReader(path) as reader:
        for record, data, problem in reader.entries():
            assert problem is None
            got[record.name.decode()] = data if isinstance(data, bytes) else b"".join(data)  # type: ignore[arg-type]
    assert got == {"big.bin": big, "small-after.txt": b"a" * 100, "big-too.bin": big}
    assert max(reads) <= CHUNK + 1024  # a window and a chunk, never the entry's 6 MiB at once


def test_a_self_extractor_prefix_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("W/a", b"hello")
    path.write_bytes(b"#!/bin/sh\nexit 0\n" + path.read_bytes())
    assert_same_as_zipfile(path)


# -- structural faults: each refused with its reason ---------------------------------------------------


def sample(tmp_path: Path, *, count: int = 3) -> Path:
    path = tmp_path / "s.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for n in range(count):
            archive.writestr(f"Wallet/Bank/{n}.bin", bytes([n]) * 100)
    return path


def refused(path: Path) -> ArchiveError:
    with pytest.raises(ArchiveError) as caught:
        with ZipReader(path) as reader:
            for _, data, _ in reader.entries():
                if data is not None and not isinstance(data, bytes):
                    b"".join(data)
    return caught.value


def patch(path: Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))


def infos(path: Path) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as archive:
        return archive.infolist()


def cd_offset(path: Path) -> int:
    return int(struct.unpack_from("<I", path.read_bytes(), os.path.getsize(path) - 6)[0])


@pytest.mark.parametrize("cut", [1, 10, 21, 22, 40])
def test_truncated_end_records(tmp_path: Path, cut: int) -> None:
    path = sample(tmp_path)
    path.write_bytes(path.read_bytes()[:-cut])
    assert "truncated" in refused(path).problem or "end record" in refused(path).problem


def test_truncated_zip64_end_records(tmp_path: Path) -> None:
    path = zip64_by_size(tmp_path / "z.zip", [(b"W/a", b"abc")])
    raw = path.read_bytes()
    path.write_bytes(
        raw[: len(raw) - 22 - 20 - 30] + raw[len(raw) - 22 - 20 :]
    )  # 30 bytes of the ZIP64 end record gone
    assert "ZIP64" in refused(path).problem


def test_end_record_claims_fewer_entries_than_the_directory_holds(tmp_path: Path) -> None:
    path = sample(tmp_path)
    size = os.path.getsize(path)
    patch(path, size - 14, struct.pack("<HH", 2, 2))
    assert refused(path).problem == "central directory holds more entries than the 2 its end record claims"


def test_end_record_claims_more_entries(tmp_path: Path) -> None:
    path = sample(tmp_path)
    patch(path, os.path.getsize(path) - 14, struct.pack("<HH", 4, 4))
    assert refused(path).problem == "central directory holds 3 entries, its end record says 4"
    cd_size = 3 * (46 + len("Wallet/Bank/0.bin"))
    patch(path, os.path.getsize(path) - 14, struct.pack("<HH", 9, 9))  # more than 46-byte records could hold
    assert refused(path).problem == f"end record claims 9 entries, more than its directory of {cd_size} bytes holds"


def test_directory_size_that_does_not_add_up(tmp_path: Path) -> None:
    path = sample(tmp_path)
    size = os.path.getsize(path)
    (cd_size,) = struct.unpack_from("<I", path.read_bytes(), size - 10)
    patch(path, size - 10, struct.pack("<I", cd_size + 40))
    assert "runs past" in refused(path).problem


def test_unaccounted_bytes_between_entries(tmp_path: Path) -> None:
    path = sample(tmp_path)
    first, second = infos(path)[:2]
    # Claim the first entry is 50 bytes shorter: its data no longer ends where the next header starts.
    patch(path, first.header_offset + 18, struct.pack("<II", 50, 50))
    raw = bytearray(path.read_bytes())
    cd = cd_offset(path)
    patch(path, cd + 20, struct.pack("<II", 50, 50))
    with pytest.raises(ArchiveError) as caught:
        with ZipReader(path) as reader:
            list(reader.entries())
    assert caught.value.path == second.filename and "unaccounted bytes" in caught.value.problem
    del raw


def test_overlapping_entries(tmp_path: Path) -> None:
    path = sample(tmp_path)
    first, second, third = infos(path)
    cd = cd_offset(path)
    record = 46 + len(first.filename)
    # The third directory record points at the second entry's local header.
    patch(path, cd + 2 * record + 42, struct.pack("<I", second.header_offset))
    error = refused(path)
    assert error.path == third.filename and "overlaps" in error.problem


def test_local_header_name_differs(tmp_path: Path) -> None:
    path = sample(tmp_path)
    second = infos(path)[1]
    patch(path, second.header_offset + 30, b"X")
    error = refused(path)
    assert (error.path, error.problem) == (second.filename, "local header name differs from the central directory")


def test_local_header_crc_differs(tmp_path: Path) -> None:
    path = sample(tmp_path)
    second = infos(path)[1]
    patch(path, second.header_offset + 14, b"\0\0\0\0")
    assert refused(path).problem == "local header CRC-32 differs from the central directory"


def test_local_header_sizes_differ(tmp_path: Path) -> None:
    path = sample(tmp_path)
    second = infos(path)[1]
    patch(path, second.header_offset + 22, struct.pack("<I", 99))
    assert refused(path).problem == "local header sizes differ from the central directory"


def test_bad_local_signature(tmp_path: Path) -> None:
    path = sample(tmp_path)
    patch(path, infos(path)[2].header_offset, b"PK\x09\x09")
    assert refused(path).problem == "bad local header signature"


def test_bad_directory_signature(tmp_path: Path) -> None:
    path = sample(tmp_path)
    patch(path, cd_offset(path) + 46 + len(infos(path)[0].filename), b"XX")
    assert "bad central directory record signature" in refused(path).problem


def test_entry_running_into_the_directory(tmp_path: Path) -> None:
    path = sample(tmp_path)
    last = infos(path)[-1]
    cd = cd_offset(path)
    record = 46 + len(last.filename)
    patch(path, cd + 2 * record + 20, struct.pack("<II", 500, 500))
    assert "runs into the central directory" in refused(path).problem


def test_damaged_data_is_a_problem_of_the_entry_not_of_the_archive(tmp_path: Path) -> None:
    path = sample(tmp_path)
    second = infos(path)[1]
    patch(path, second.header_offset + 30 + len(second.filename) + 5, b"\xff")
    with ZipReader(path) as reader:
        results = [(decode_name(r), problem) for r, _, problem in reader.entries()]
    assert results[0] == ("Wallet/Bank/0.bin", None) and results[2] == ("Wallet/Bank/2.bin", None)
    assert results[1][0] == "Wallet/Bank/1.bin" and results[1][1].startswith("CRC-32 mismatch")


def test_a_deflate_bomb_is_stopped_at_its_recorded_size(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("W/small", b"\0" * 1000)
        archive.writestr("W/big", b"\0" * (3 * CHUNK))
    raw = path.read_bytes()
    small, big = infos(path)
    cd = cd_offset(path)
    # Both claim fewer bytes than they inflate to.
    patch(path, small.header_offset + 22, struct.pack("<I", 10))
    patch(path, cd + 24, struct.pack("<I", 10))
    patch(path, big.header_offset + 22, struct.pack("<I", CHUNK + 10))
    patch(path, cd + 46 + len(small.filename) + 24, struct.pack("<I", CHUNK + 10))
    del raw
    with ZipReader(path) as reader:
        it = reader.entries()
        record, data, problem = next(it)
        assert problem == "inflates to more than the recorded 10 bytes"
        record, chunks, problem = next(it)
        with pytest.raises(EntryDamaged, match="inflates to more than"):
            for _ in chunks:  # type: ignore[union-attr]
                pass


def test_a_file_that_is_no_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"hello, this is no archive" * 10)
    assert "end of central directory record not found" in refused(path).problem
    path.write_bytes(b"")
    assert refused(path).problem == "file too short to be a ZIP archive"
