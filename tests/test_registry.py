"""The wallet registry, wallet-locations.csv: format, round trip, atomic writes, bad rows, start-up repair."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from app.wallet import storage
from app.wallet.registry import COMMENT, RegistryEntry, parse_registry, read_registry, render_registry, write_registry
from tests.conftest import register_offline_wallet


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    return tmp_path / "wallet-locations.csv"


ENTRIES = [
    RegistryEntry("/home/ana/Client_Data/Wallets/Default", "local"),
    RegistryEntry("/media/ana/USB/CloudCoin/Savings", "removable"),
    RegistryEntry("/srv/share/Wallets/Joint, with comma", "network"),
    RegistryEntry('/home/ana/Wallets/say "hi"\u2028and\u0085more', "local"),
]


def test_write_then_read_round_trips(registry_path):
    write_registry(registry_path, ENTRIES)
    registry = read_registry(registry_path)
    assert list(registry.entries) == ENTRIES
    assert registry.bad_rows == ()


def test_file_format_is_exactly_comment_header_rows(registry_path):
    write_registry(registry_path, ENTRIES[:3])
    assert registry_path.read_bytes() == (
        b"# CloudCoin wallet registry: one row per wallet; the first row is the active wallet\n"
        b"wallet_path,type\n"
        b"/home/ana/Client_Data/Wallets/Default,local\n"
        b"/media/ana/USB/CloudCoin/Savings,removable\n"
        b'"/srv/share/Wallets/Joint, with comma",network\n'
    )
    assert COMMENT.startswith("# ")


def test_written_file_is_utf8(registry_path):
    write_registry(registry_path, [RegistryEntry("/home/zoë/財布", "local")])
    assert "/home/zoë/財布,local".encode() in registry_path.read_bytes()


def test_first_row_is_the_active_wallet_and_order_is_kept(registry_path):
    write_registry(registry_path, list(reversed(ENTRIES)))
    assert [e.wallet_path for e in read_registry(registry_path).entries] == [e.wallet_path for e in reversed(ENTRIES)]
    assert read_registry(registry_path).index_of(ENTRIES[0].wallet_path) == len(ENTRIES) - 1


def test_missing_file_reads_as_empty(registry_path):
    registry = read_registry(registry_path)
    assert registry.entries == () and registry.bad_rows == ()


def _leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name != "wallet-locations.csv")


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(registry_path, monkeypatch, failing):
    write_registry(registry_path, ENTRIES[:1])
    before = registry_path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, failing, broken)
    with pytest.raises(OSError):
        write_registry(registry_path, ENTRIES)
    monkeypatch.undo()
    assert registry_path.read_bytes() == before
    assert _leftovers(registry_path.parent) == []


def test_failed_write_of_the_data_keeps_the_old_file(registry_path, monkeypatch):
    write_registry(registry_path, ENTRIES[:1])
    before = registry_path.read_bytes()
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, fh):
            self._fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

        def write(self, data):
            self._fh.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError):
        write_registry(registry_path, ENTRIES)
    monkeypatch.undo()
    assert registry_path.read_bytes() == before
    assert _leftovers(registry_path.parent) == []


def test_write_goes_through_a_temporary_file_in_the_same_directory(registry_path, monkeypatch):
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(storage.os, "replace", spy)
    write_registry(registry_path, ENTRIES)
    ((src, dst),) = replaced
    assert Path(src).parent == registry_path.parent and Path(src) != registry_path
    assert dst == str(registry_path)
    assert _leftovers(registry_path.parent) == []


def test_bad_rows_are_skipped_with_a_warning(registry_path, caplog):
    registry_path.write_bytes(
        COMMENT.encode() + b"\nwallet_path,type\n"
        b"/good/one,local\n"
        b"relative/path,local\n"
        b"/bad/type,floppy\n"
        b"/too,many,cells\n"
        b"/not/utf8/\xff\xfe,local\n"
        b",local\n"
        b'"/unclosed,local\n'
        b"/good/two,removable\n"
    )
    with caplog.at_level(logging.WARNING, logger="app.wallet.registry"):
        registry = read_registry(registry_path)
    assert [e.wallet_path for e in registry.entries] == ["/good/one", "/good/two"]
    assert len(registry.bad_rows) == 6
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 6
    assert any("relative/path" in r.getMessage() for r in warnings)


def test_bad_rows_are_kept_beside_the_registry_on_the_next_write(registry_path):
    original = COMMENT.encode() + b"\nwallet_path,type\n/good/one,local\nnot a row at all\n/x/\xff,local\n"
    registry_path.write_bytes(original)
    registry = read_registry(registry_path)
    write_registry(registry_path, registry.entries)
    kept = sorted(registry_path.parent.glob("wallet-locations.csv.bad-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == original
    assert read_registry(registry_path).bad_rows == ()
    assert [e.wallet_path for e in read_registry(registry_path).entries] == ["/good/one"]
    # The bad rows were saved once; the next write has nothing more to keep.
    write_registry(registry_path, registry.entries)
    assert len(list(registry_path.parent.glob("wallet-locations.csv.bad-*"))) == 1


def test_duplicate_rows_count_once(registry_path):
    registry_path.write_text(
        f"{COMMENT}\nwallet_path,type\n/w/A,local\n/w/B,local\n/w/A,removable\n/w/A/,local\n", encoding="utf-8"
    )
    registry = read_registry(registry_path)
    assert [e.wallet_path for e in registry.entries] == ["/w/A", "/w/B"]
    assert registry.bad_rows == ()


def test_hand_edited_file_with_bom_crlf_and_no_type_is_read(registry_path):
    registry_path.write_bytes(
        b"\xef\xbb\xbf# edited in Notepad\r\nwallet_path,type\r\n/w/A\r\n  \r\n/w/B, removable\r\n"
    )
    registry = read_registry(registry_path)
    assert list(registry.entries) == [RegistryEntry("/w/A", "local"), RegistryEntry("/w/B", "removable")]
    assert registry.bad_rows == ()


def test_a_path_with_a_line_break_is_never_written(registry_path):
    with pytest.raises(ValueError):
        render_registry([RegistryEntry("/w/two\nlines", "local")])
    assert not registry_path.exists()


def test_parse_accepts_text_or_bytes():
    text = f"{COMMENT}\nwallet_path,type\n/w/A,local\n"
    assert parse_registry(text) == parse_registry(text.encode())


# -- the registry as the server keeps it -------------------------------------------------------


async def test_first_start_creates_the_registry_with_default(make_client, data_dir):
    client = await make_client()
    default = data_dir / "Wallets" / "Default"
    assert read_registry(data_dir / "wallet-locations.csv").entries == (RegistryEntry(str(default), "local"),)
    body = await (await client.get("/api/wallets/list")).json()
    assert [w["wallet_path"] for w in body["wallets"]] == [str(default)]
    assert body["wallets"][0]["active"] is True


async def test_missing_registry_is_recreated_with_default(make_client, data_dir):
    client = await make_client()
    await client.close()
    (data_dir / "wallet-locations.csv").unlink()
    await make_client()
    entries = read_registry(data_dir / "wallet-locations.csv").entries
    assert [e.wallet_path for e in entries] == [str(data_dir / "Wallets" / "Default")]


async def test_default_is_registered_again_after_the_active_wallet(make_client, data_dir, tmp_path):
    other = tmp_path / "usb" / "Savings"
    (other / "Bank").mkdir(parents=True)
    (other / "Fracked").mkdir()
    data_dir.mkdir()
    write_registry(data_dir / "wallet-locations.csv", [RegistryEntry(str(other), "removable")])
    client = await make_client()
    body = await (await client.get("/api/wallets/list")).json()
    assert [w["wallet_path"] for w in body["wallets"]] == [str(other), str(data_dir / "Wallets" / "Default")]
    assert body["wallets"][0]["active"] is True


async def test_registry_of_only_bad_rows_is_repaired_and_the_rows_kept(make_client, data_dir):
    data_dir.mkdir()
    original = f"{COMMENT}\nwallet_path,type\nthis is not a path\n".encode()
    (data_dir / "wallet-locations.csv").write_bytes(original)
    client = await make_client()
    body = await (await client.get("/api/wallets/list")).json()
    assert body["count"] == 1 and body["wallets"][0]["wallet_name"] == "Default"
    (kept,) = data_dir.glob("wallet-locations.csv.bad-*")
    assert kept.read_bytes() == original


async def test_wallet_whose_folder_is_missing_is_listed_offline(make_client, data_dir, tmp_path):
    gone = register_offline_wallet(data_dir, tmp_path)
    client = await make_client()
    body = await (await client.get("/api/wallets/list")).json()
    assert body["count"] == 2
    offline = body["wallets"][1]
    assert offline["wallet_path"] == str(gone)
    assert offline["online"] is False
    assert offline["wallet_name"] == "Stick"
    assert body["wallets"][0]["online"] is True
    # It stays registered: the registry still names it after the start-up repair.
    assert str(gone) in (data_dir / "wallet-locations.csv").read_text(encoding="utf-8")


async def test_wallet_folder_removed_while_running_turns_offline(client, data_dir):
    created = await client.post("/api/wallets/create", json={"wallet_path": "Temp"})
    assert created.status == 200
    shutil.rmtree(data_dir / "Wallets" / "Temp")
    body = await (await client.get("/api/wallets/list")).json()
    (temp,) = [w for w in body["wallets"] if w["wallet_name"] == "Temp"]
    assert temp["online"] is False


async def test_duplicate_rows_are_listed_once(make_client, data_dir):
    data_dir.mkdir()
    default = data_dir / "Wallets" / "Default"
    (data_dir / "wallet-locations.csv").write_text(
        f"{COMMENT}\nwallet_path,type\n{default},local\n{default},local\n", encoding="utf-8"
    )
    client = await make_client()
    body = await (await client.get("/api/wallets/list")).json()
    assert body["count"] == 1
