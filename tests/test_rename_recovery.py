"""The rename journal: a crash between the folder move and the registry write is settled at the next start."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.wallet.config import Config
from app.wallet.paths import canonical
from app.wallet.registry import RegistryEntry, read_registry, write_registry
from app.wallet.wallets import make_wallet_folder
from jobs.rename import journal_dir, settle_journal
from tests.conftest import write_coins

ROOT = Path(__file__).resolve().parent.parent


def registered(config: Config) -> list[str]:
    return [entry.wallet_path for entry in read_registry(config.registry_path).entries]


def set_up(config: Config, *names: str) -> list[Path]:
    """A data directory as a previous run left it: wallets, a registry naming them (first is active)."""
    for folder in (config.data_dir, config.wallets_dir, config.jobs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = canonical(config.wallets_dir) / name
        make_wallet_folder(path)
        write_coins(path / "Bank", range(1, 4))
        paths.append(path)
    write_registry(config.registry_path, [RegistryEntry(str(p)) for p in paths])
    return paths


def journal(
    config: Config, old: Path, new: Path, job_id: str = "a" * 32, *, folder: os.stat_result | None = None
) -> Path:
    """An entry as the job writes it; `folder` (the wallet folder's stat before the move) is optional,
    as in entries of older versions."""
    record: dict[str, Any] = {"job_id": job_id, "old_path": str(old), "new_path": str(new)}
    if folder is not None:
        record["folder"] = {"dev": folder.st_dev, "ino": folder.st_ino}
    entries = journal_dir(config)
    entries.mkdir(parents=True, exist_ok=True)
    entry = entries / f"{job_id}.json"
    entry.write_text(json.dumps(record))
    return entry


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config()


# -- settle_journal on its own ------------------------------------------------------------------------


def test_no_journal_settles_nothing(config: Config) -> None:
    assert settle_journal(config) == []


def test_folder_moved_but_registry_not_written_is_completed(config: Config) -> None:
    default, second = set_up(config, "Default", "Second")
    new = second.with_name("Second Renamed")
    os.rename(second, new)  # the crash came after the move, before the registry write
    entry = journal(config, second, new)
    (line,) = settle_journal(config)
    assert "completed" in line
    assert registered(config) == [str(default), str(new)]
    assert not entry.exists()
    assert len(list((new / "Bank").iterdir())) == 3


def test_folder_not_moved_is_rolled_back(config: Config) -> None:
    default, second = set_up(config, "Default", "Second")
    entry = journal(config, second, second.with_name("Never"))
    (line,) = settle_journal(config)
    assert "rolled back" in line
    assert registered(config) == [str(default), str(second)]
    assert second.is_dir() and not second.with_name("Never").exists()
    assert not entry.exists()


def test_active_wallet_moved_stays_first(config: Config) -> None:
    default, second = set_up(config, "Default", "Second")
    new = default.with_name("Main")
    os.rename(default, new)
    journal(config, default, new)
    settle_journal(config)
    assert registered(config) == [str(new), str(second)]


def test_registry_already_written_is_left_as_it_is(config: Config) -> None:
    """The crash came after the registry write, before the journal entry was removed."""
    (default,) = set_up(config, "Default")
    new = default.with_name("Done")
    os.rename(default, new)
    write_registry(config.registry_path, [RegistryEntry(str(new))])
    before = config.registry_path.read_bytes()
    journal(config, default, new)
    (line,) = settle_journal(config)
    assert "completed" in line and "already" in line
    assert config.registry_path.read_bytes() == before


def test_registry_pointing_at_a_folder_that_was_never_moved_is_rolled_back(config: Config) -> None:
    (default,) = set_up(config, "Default")
    write_registry(config.registry_path, [RegistryEntry(str(default.with_name("Ghost")))])
    journal(config, default, default.with_name("Ghost"))
    settle_journal(config)
    assert registered(config) == [str(default)]


def test_an_unrelated_folder_at_the_new_name_does_not_complete_the_rename(config: Config) -> None:
    (default,) = set_up(config, "Default")
    (default.parent / "Taken").mkdir()
    journal(config, default, default.parent / "Taken")
    (line,) = settle_journal(config)
    assert "rolled back" in line and registered(config) == [str(default)]


def test_neither_folder_leaves_the_registry_alone(config: Config) -> None:
    (default,) = set_up(config, "Default")
    before = config.registry_path.read_bytes()
    entry = journal(config, default.with_name("A"), default.with_name("B"))
    (line,) = settle_journal(config)
    assert "neither" in line and config.registry_path.read_bytes() == before and not entry.exists()


def test_moved_wallet_missing_from_the_registry_is_registered_again(config: Config) -> None:
    default, second = set_up(config, "Default", "Second")
    new = second.with_name("Moved")
    os.rename(second, new)
    write_registry(config.registry_path, [RegistryEntry(str(default))])
    journal(config, second, new)
    settle_journal(config)
    assert registered(config) == [str(default), str(new)]


def test_unreadable_entry_is_kept_aside_and_changes_nothing(config: Config) -> None:
    set_up(config, "Default")
    before = config.registry_path.read_bytes()
    folder = journal_dir(config)
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text("{not json")
    (line,) = settle_journal(config)
    assert "unreadable" in line
    assert sorted(os.listdir(folder)) == ["broken.json.bad"]
    assert config.registry_path.read_bytes() == before


def test_unfinished_journal_write_is_removed(config: Config) -> None:
    set_up(config, "Default")
    folder = journal_dir(config)
    folder.mkdir(parents=True)
    (folder / ".abc.json.x1y2.tmp").write_text("{")
    assert len(settle_journal(config)) == 1
    assert os.listdir(folder) == []


def test_entry_whose_registry_cannot_be_written_stays_for_the_next_start(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jobs.rename

    default, second = set_up(config, "Default", "Second")
    new = second.with_name("Later")
    os.rename(second, new)
    entry = journal(config, second, new)

    def disk_full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jobs.rename, "write_registry", disk_full)
    (line,) = settle_journal(config)
    assert "retried" in line and entry.exists()
    monkeypatch.undo()
    settle_journal(config)
    assert registered(config) == [str(default), str(new)] and not entry.exists()


def test_several_entries_are_settled_in_one_pass(config: Config) -> None:
    default, second, third = set_up(config, "Default", "Second", "Third")
    os.rename(second, second.with_name("Second New"))
    journal(config, second, second.with_name("Second New"), "1" * 32)
    journal(config, third, third.with_name("Third New"), "2" * 32)
    assert len(settle_journal(config)) == 2
    assert registered(config) == [str(default), str(second.with_name("Second New")), str(third)]
    assert os.listdir(journal_dir(config)) == []


# -- at server start ----------------------------------------------------------------------------------


async def test_server_start_settles_both_states(make_client: Any, config: Config) -> None:
    default, moved, unmoved = set_up(config, "Default", "Moved", "Unmoved")
    os.rename(moved, moved.with_name("Moved New"))
    journal(config, moved, moved.with_name("Moved New"), "1" * 32)
    journal(config, unmoved, unmoved.with_name("Unmoved New"), "2" * 32)
    client = await make_client()
    listing = await (await client.get("/api/wallets/list")).json()
    assert [(w["wallet_name"], w["active"], w["online"]) for w in listing["wallets"]] == [
        ("Default", True, True),
        ("Moved New", False, True),
        ("Unmoved", False, True),
    ]
    assert os.listdir(journal_dir(config)) == []
    # And the settled wallets can be renamed again at once.
    response = await client.get("/api/wallets/rename", params={"wallet_path": "Moved New", "new_name": "Again"})
    assert response.status == 200, await response.text()


# -- a real crash: SIGKILL between the folder move and the registry write -----------------------------

CRASHING_SERVER = textwrap.dedent(
    """
    import os, signal, sys
    from aiohttp import web
    import jobs.rename
    from app.wallet.config import Config
    from app.main import create_app

    def crash(config, old, new):
        os.kill(os.getpid(), signal.SIGKILL)  # the folder has moved; the registry is not written

    jobs.rename._point_registry = crash
    config = Config(data_dir=sys.argv[1], port=int(sys.argv[2]))
    web.run_app(create_app(config), host="127.0.0.1", port=config.port, print=None)
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_server_killed_between_move_and_registry_write_recovers_at_restart(
    make_client: Any, config: Config
) -> None:
    default, second = set_up(config, "Default", "Second")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", CRASHING_SERVER, str(config.data_dir), str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    async with session.get(f"{base}/api/health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the crashing server did not start")
            with pytest.raises(aiohttp.ClientError):
                async with session.get(
                    f"{base}/api/wallets/rename", params={"wallet_path": "Second", "new_name": "Crashed"}
                ) as response:
                    await response.read()
        assert await asyncio.to_thread(server.wait, 10) == -9
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        assert server.stderr is not None
        server.stderr.close()
    # The crash left the folder moved, the registry stale and the journal entry behind.
    assert second.with_name("Crashed").is_dir() and not second.exists()
    assert registered(config) == [str(default), str(second)]
    assert len(os.listdir(journal_dir(config))) == 1
    client = await make_client()
    listing = await (await client.get("/api/wallets/list")).json()
    assert [w["wallet_path"] for w in listing["wallets"]] == [str(default), str(second.with_name("Crashed"))]
    assert os.listdir(journal_dir(config)) == []


async def test_interrupted_rename_of_default_is_completed_although_start_recreates_default(
    make_client: Any, config: Config
) -> None:
    """The start recreates a missing Default wallet; the journal still knows which folder is the real one."""
    default, second = set_up(config, "Default", "Second")
    main = default.with_name("Main")
    journal(config, default, main, folder=os.lstat(default))
    os.rename(default, main)
    client = await make_client()
    listing = await (await client.get("/api/wallets/list")).json()
    rows = [(w["wallet_name"], w["active"]) for w in listing["wallets"]]
    assert rows[:2] == [("Main", True), ("Second", False)]
    assert len(list((main / "Bank").iterdir())) == 3


def test_identity_tells_the_moved_wallet_from_a_new_folder_at_the_old_path(config: Config) -> None:
    default, second = set_up(config, "Default", "Second")
    new = second.with_name("Moved")
    entry = journal(config, second, new, folder=os.lstat(second))
    os.rename(second, new)
    second.mkdir()  # something else appeared at the old name
    (line,) = settle_journal(config)
    assert "completed" in line and registered(config) == [str(default), str(new)]
    assert not entry.exists()


def test_identity_of_the_unmoved_wallet_rolls_back_although_the_new_name_exists(config: Config) -> None:
    default, second = set_up(config, "Default", "Second")
    journal(config, second, second.with_name("Taken"), folder=os.lstat(second))
    (default.parent / "Taken").mkdir()
    (line,) = settle_journal(config)
    assert "rolled back" in line and registered(config) == [str(default), str(second)]


# -- the job's own outcome after the journal was settled ------------------------------------------------


def test_cleanup_of_a_rename_that_finished_before_the_kill_completes_it(config: Config) -> None:
    from datetime import UTC, datetime

    from jobs.models import Job, JobKind
    from jobs.rename import cleanup_rename

    default, second = set_up(config, "Default", "Second")
    new = second.with_name("Done")
    params = {"wallet_path": str(second), "new_name": "Done"}
    ran = Job.new(JobKind.RENAME, wallet_path=str(second), params=params)
    ran.started_at = datetime.now(UTC)
    duplicate = Job.new(JobKind.RENAME, wallet_path=str(second), params=params)  # queued, never ran
    assert cleanup_rename(config, ran) is None  # nothing renamed yet: the job fails
    os.rename(second, new)  # the whole rename, journal cleared, before the job's end was stored
    write_registry(config.registry_path, [RegistryEntry(str(default)), RegistryEntry(str(new))])

    result = cleanup_rename(config, ran)
    assert result is not None and result["recovered"] is True
    assert (result["old_path"], result["new_path"], result["job_id"]) == (str(second), str(new), ran.id)
    assert cleanup_rename(config, duplicate) is None
