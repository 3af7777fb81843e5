"""The fast paths of restore and verify refuse exactly what the general paths refuse.

The checker passes this server's own entries (a plain name, its manifest line next, in the compact
text the backup writes) in one fast branch, and the reader compares a sound local header with its
directory record as bytes. Each crafted archive here is built twice, with the manifest in this
server's text (the fast branch runs) and in `json.dumps`'s spaced text (only the general path can
read it): verify must report the same problems and restore must give the same answer for both. Real
backups patched byte by byte check the reader's fast path the same way.
"""

from __future__ import annotations

import json
import stat
import struct
import threading
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from jobs.models import JobFailed
from jobs.restore import manifest as manifest_module
from jobs.restore.extraction import extract_archive
from jobs.restore.plan import RestorePlan
from jobs.restore.verify import verify_archive
from tests.conftest import coin_bytes
from tests.test_restore import backup, make_wallet, restore_call
from tests.test_restore_checks import MANIFEST, manifest_document

Entry = tuple[zipfile.ZipInfo | str, bytes | None]
#: the entry flagged as ZIP-encrypted (general-purpose bit 0) once written
ENCRYPTED = "Hand/Bank/e.bin"


def manifest_text(listed: list[tuple[str, bytes | None]], *, compact: bool, edit: Any = None) -> bytes:
    """The manifest of `listed`: in this server's text (compact lines joined by ",\\n") or spaced."""
    document = manifest_document("Hand/", listed)
    if edit is not None:
        edit(document["entries"])
    items = document.pop("entries")
    if not compact:
        return json.dumps({**document, "entries": items}).encode()
    lines = ",\n".join(json.dumps(item, separators=(",", ":")) for item in items)
    return (json.dumps(document)[:-1] + ', "entries": [\n' + lines + "\n]}").encode()


def info(name: str, mode: int) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, (2026, 11, 30, 12, 0, 0))
    entry.external_attr = mode << 16
    return entry


def write(path: Path, entries: list[Entry], manifest: bytes) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
        warnings.simplefilter("ignore")  # the duplicates are wanted
        for name, data in entries:
            if isinstance(name, str):
                name = info(name, (stat.S_IFDIR | 0o700) if name.endswith("/") else (stat.S_IFREG | 0o600))
            archive.writestr(name, data or b"")
        archive.writestr(MANIFEST, manifest, compress_type=zipfile.ZIP_DEFLATED)
    for name, _ in entries:
        if not isinstance(name, str) and name.filename == ENCRYPTED:  # zipfile clears the flag: set it in both
            raw = bytearray(path.read_bytes())
            local = raw.find(name.filename.encode()) - 30
            central = raw.find(name.filename.encode(), local + 31) - 46
            raw[local + 6] |= 1
            raw[central + 8] |= 1
            path.write_bytes(bytes(raw))
    return path


def base() -> list[Entry]:
    return [
        ("Hand/", None),
        ("Hand/Bank/", None),
        ("Hand/Fracked/", None),
        ("Hand/Bank/1 CloudCoin #1 'x'.bin", coin_bytes(1)),
        ("Hand/Bank/2 CloudCoin #2 'x'.bin", coin_bytes(2)),
        ("Hand/Fracked/10 CloudCoin #3 'x'.bin", coin_bytes(3, 1)),
    ]


def named(entries: list[Entry]) -> list[tuple[str, bytes | None]]:
    return [(name if isinstance(name, str) else name.filename, data) for name, data in entries]


def case(kind: str) -> tuple[list[Entry], list[tuple[str, bytes | None]], Any]:
    """(archive entries, manifest listing, an edit of the manifest's entries) of one crafted archive."""
    entries = base()
    edit = None
    data = b"data"
    if kind == "sound":
        pass
    elif kind == "sha256":
        edit = lambda items: items[-1].update(sha256="0" * 64)  # noqa: E731
    elif kind == "size":
        edit = lambda items: items[-1].update(size=items[-1]["size"] + 1)  # noqa: E731
    elif kind == "type":
        edit = lambda items: items[-1].update(type="dir")  # noqa: E731
    elif kind == "unlisted":
        return [*entries, ("Hand/Bank/extra.bin", data)], named(entries), None
    elif kind == "missing":
        return entries, [*named(entries), ("Hand/Bank/gone.bin", data)], None
    elif kind == "duplicate-listed-twice":
        entries.append(entries[-1])
    elif kind == "duplicate-listed-once":
        return [*entries, entries[-1]], named(entries), None
    elif kind == "folder-listed-twice":
        entries.append(("Hand/Bank/", None))
    elif kind == "file-folder-collision":
        entries += [("Hand/Bank/x.bin", data), ("Hand/Bank/x.bin/y.bin", data)]
    elif kind in ("dotdot", "dot", "double-slash", "backslash", "drive", "deep", "long", "nul"):
        name = {
            "dotdot": "Hand/Bank/../../x.bin",
            "dot": "Hand/Bank/./x.bin",
            "double-slash": "Hand/Bank//x.bin",
            "backslash": "Hand/Bank\\x.bin",
            "drive": "C:/Hand/x.bin",
            "deep": "Hand/" + "d/" * 70 + "x.bin",
            "long": "Hand/Bank/" + "x" * 300 + ".bin",
            "nul": "Hand/Bank/x\0.bin",
        }[kind]
        entries.append((name, data))
    elif kind == "colon":  # not a drive letter inside the wallet folder: fine for both
        entries.append(("Hand/C:x.bin", data))
    elif kind == "hidden":  # a dot file: fine for both, but not for the fast branch's quick test
        entries.append(("Hand/Bank/.hidden", data))
    elif kind == "quote":  # JSON escapes it: fine for both, not this server's plain text
        entries.append(('Hand/Bank/a"b.bin', data))
    elif kind == "control":
        entries.append(("Hand/Bank/a\x01b.bin", data))
    elif kind == "utf8":
        entries.append(("Hand/Bank/é.bin", data))
    elif kind == "outside-root":
        return [*entries, ("Other/x.bin", data)], named(entries), None
    elif kind == "symlink":
        entries.append((info("Hand/Bank/link.bin", stat.S_IFLNK | 0o777), b"/etc/passwd"))
    elif kind == "device":
        entries.append((info("Hand/Bank/dev.bin", stat.S_IFCHR | 0o600), data))
    elif kind == "folder-mode-on-a-file":
        entries.append((info("Hand/Bank/f.bin", stat.S_IFDIR | 0o700), data))
    elif kind == "file-mode-on-a-folder":
        entries.append((info("Hand/Receipts/", stat.S_IFREG | 0o600), None))
    elif kind == "no-mode":
        entries.append((info("Hand/Bank/plain.bin", 0), data))
    elif kind == "encrypted-flag":
        entries.append((info(ENCRYPTED, stat.S_IFREG | 0o600), data))
    else:
        raise AssertionError(kind)
    return entries, named(entries), edit


KINDS = [
    "sound", "sha256", "size", "type", "unlisted", "missing", "duplicate-listed-twice", "duplicate-listed-once",
    "folder-listed-twice", "file-folder-collision", "dotdot", "dot", "double-slash", "backslash", "drive", "deep",
    "long", "nul", "colon", "hidden", "quote", "control", "utf8", "outside-root", "symlink", "device",
    "folder-mode-on-a-file", "file-mode-on-a-folder", "no-mode", "encrypted-flag",
]  # fmt: skip


def verified(path: Path) -> tuple[bool, list[dict[str, str]], int]:
    body = verify_archive(path, cancel=threading.Event(), report=lambda **_: None)
    return body["ok"], body["problems"], body["entries_checked"]


def restored(path: Path, location: Path) -> tuple[int, Any]:
    """(status, body) of a restore of `path` into `location`: 200 and the counts, or the refusal."""
    location.mkdir()
    try:
        counts = extract_archive(
            RestorePlan(path, location, "Hand"), location / "t", key=None, cancel=threading.Event(),
            report=lambda **_: None,
        )  # fmt: skip
    except JobFailed as failure:
        assert not any(location.iterdir())  # a refusal leaves nothing
        return failure.http_status, failure.body
    return 200, (counts.files, counts.folders, counts.bytes)


@pytest.mark.parametrize("kind", KINDS)
def test_the_fast_branch_refuses_what_the_general_path_refuses(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries, listed, edit = case(kind)
    fast = write(tmp_path / "fast.zip", entries, manifest_text(listed, compact=True, edit=edit))
    general = write(tmp_path / "general.zip", entries, manifest_text(listed, compact=False, edit=edit))
    windows: list[int] = []
    window = manifest_module.ManifestStream.window

    def counted(self: manifest_module.ManifestStream) -> tuple[str, int]:
        windows.append(1)
        return window(self)

    monkeypatch.setattr(manifest_module.ManifestStream, "window", counted)
    assert verified(fast) == verified(general)
    assert windows  # the compact manifest did take the fast branch
    assert restored(fast, tmp_path / "a") == restored(general, tmp_path / "b")
    ok = verified(fast)[0]
    assert ok == (
        kind in ("sound", "colon", "hidden", "quote", "control", "utf8", "no-mode", "file-mode-on-a-folder")
    ), verified(fast)


# -- the reader's fast path on real backups --------------------------------------------------------------


def local_header(path: Path, entry: str) -> int:
    with zipfile.ZipFile(path) as archive:
        return archive.getinfo(entry).header_offset


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("sound", None),
        ("data", "CRC-32 mismatch"),
        ("local-crc", "local header CRC-32 differs from the central directory"),
        ("local-size", "local header sizes differ from the central directory"),
        ("local-name", "local header name differs from the central directory"),
        ("local-signature", "bad local header signature"),
        ("local-method", "local header method or flags differ from the central directory"),
        ("local-time", None),  # the local header's time is not checked: the fast path defers to the full one
        ("local-version", None),
    ],
)
async def test_the_readers_fast_path_on_real_backups(
    client: TestClient, data_dir: Path, tmp_path: Path, kind: str, problem: str | None
) -> None:
    wallet = await make_wallet(client, data_dir)
    path = await backup(client, wallet, tmp_path / "backups")
    with zipfile.ZipFile(path) as archive:
        coin = next(i.filename for i in archive.infolist() if i.filename.endswith(".bin"))
    original = zipfile.ZipFile(path).read(coin)
    offset = local_header(path, coin)
    if kind == "data":
        with open(path, "rb") as fh:
            fh.seek(offset + 26)
            nlen = struct.unpack("<H", fh.read(2))[0]
        patch(path, offset + 30 + nlen + 100, b"\xff")
    elif kind == "local-crc":
        patch(path, offset + 14, b"\0\0\0\0")
    elif kind == "local-size":
        patch(path, offset + 18, struct.pack("<II", 400, 400))
    elif kind == "local-name":
        patch(path, offset + 30, b"X")
    elif kind == "local-signature":
        patch(path, offset, b"PK\x03\x05")
    elif kind == "local-method":
        patch(path, offset + 8, struct.pack("<H", 8))
    elif kind == "local-time":
        patch(path, offset + 10, struct.pack("<H", 0))
    elif kind == "local-version":
        patch(path, offset + 4, struct.pack("<H", 10))
    ok, problems, _ = verified(path)
    location = tmp_path / "location"
    location.mkdir()
    status, body = await restore_call(client, zip_path=str(path), location=str(location), new_name="Back")
    if problem is None:
        assert (ok, problems, status) == (True, [], 200), (problems, body)
        assert (location / "Back" / coin.partition("/")[2]).read_bytes() == original
    else:
        assert not ok and any(problem in p["problem"] for p in problems), problems
        assert status == 400 and problem in body["error"], body
        assert list(location.iterdir()) == []
