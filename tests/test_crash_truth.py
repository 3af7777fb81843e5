"""Job outcomes after a real crash (issue 10, items 1-3): `python -m app` killed with SIGKILL at an exact step.

Each test patches the server from inside (tests/crashserver.py) so that the kill lands where it must,
restarts it without the patch, and checks what the job says against what is on disk.
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from pathlib import Path

from app.wallet.registry import read_registry
from tests.crashserver import DELAYED_STORE, KILL, CrashServer
from tests.crashserver import server as server  # noqa: F401 - the fixture
from tests.test_backup_crash import make_wallet

ASYNC = {"Prefer": "respond-async"}


def leftovers(*folders: Path) -> list[str]:
    """Every temporary name of the server in `folders`."""
    found = []
    for folder in folders:
        if folder.is_dir():
            found += [str(folder / n) for n in os.listdir(folder) if n.startswith(".cloudcoin-")]
    return found


def wait_for(predicate, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


# -- 1. durable before 202 ------------------------------------------------------------------------


def test_a_202_job_is_known_after_a_kill_although_the_store_writes_slowly(server: CrashServer, tmp_path: Path) -> None:
    make_wallet(server.data_dir / "Wallets" / "Default", 10)
    server.start(DELAYED_STORE.replace("DELAY", "0.8"))
    status, accepted = server.request(
        "POST", "/api/wallets/backup", {"destination": str(tmp_path / "b")}, headers=ASYNC
    )
    assert status == 202, accepted
    server.kill()  # at once: a store that commits later would lose the job

    server.start()
    status, job = server.request("GET", f"/api/jobs/{accepted['job_id']}")
    assert status == 200, job
    assert job["status"] in ("failed", "completed")


def test_a_job_store_on_a_full_disk_refuses_new_jobs_and_loses_none_it_accepted(
    server: CrashServer, tmp_path: Path
) -> None:
    make_wallet(server.data_dir / "Wallets" / "Default", 3)
    # RLIMIT_FSIZE: a write past 60 kB fails as on a full disk; the store's WAL reaches it within a few jobs.
    server.start("import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))")
    accepted: list[str] = []
    for n in range(60):
        destination = tmp_path / f"d{n}"
        status, body = server.request("POST", "/api/wallets/backup", {"destination": str(destination)}, headers=ASYNC)
        if status != 202:
            break
        accepted.append(body["job_id"])
    assert status == 503, "the store never filled up"
    assert set(body) == {"success", "error", "code"} and body["success"] is False and body["code"] == 503
    assert body["error"].startswith("The job could not be saved (") and body["error"].endswith("); nothing was started")
    time.sleep(0.3)
    assert not destination.exists()  # the refused job never ran
    server.kill()

    server.start()
    for job_id in accepted:
        assert server.request("GET", f"/api/jobs/{job_id}")[0] == 200, job_id
    assert server.request("GET", "/api/jobs")[1]["count"] == len(accepted)


# -- 2. the real outcome at restart ---------------------------------------------------------------


def test_backup_killed_after_its_archive_got_its_final_name_is_completed_and_recovered(
    server: CrashServer, tmp_path: Path
) -> None:
    make_wallet(server.data_dir / "Wallets" / "Default", 50)
    destination = tmp_path / "backups"
    server.start(
        f"""
        import jobs.backup.backup as b
        _claim = b.claim_final_name
        def claim(*args):
            final = _claim(*args)
            {KILL}
        b.claim_final_name = claim
        """
    )
    status, accepted = server.request("POST", "/api/wallets/backup", {"destination": str(destination)}, headers=ASYNC)
    assert status == 202
    server.wait_killed()
    names = sorted(os.listdir(destination))
    assert len(names) == 2 and names[0].startswith(".cloudcoin-backup-"), names  # the kill left both names

    server.start()
    status, job = server.request("GET", f"/api/jobs/{accepted['job_id']}")
    assert status == 200
    assert job["status"] == "completed", job
    result = job["result"]
    assert result["recovered"] is True and result["success"] is True
    assert result["zip_path"] == str(destination / names[1]) and result["filename"] == names[1]
    assert os.listdir(destination) == [names[1]]
    with zipfile.ZipFile(destination / names[1]) as archive:
        assert archive.testzip() is None
    places = (server.data_dir / "BackupPlaces.txt").read_text().splitlines()
    assert places[0] == str(destination)


def test_backup_killed_after_its_temporary_name_went_is_found_by_its_manifest(
    server: CrashServer, tmp_path: Path
) -> None:
    make_wallet(server.data_dir / "Wallets" / "Default", 50)
    destination = tmp_path / "backups"
    server.start(
        f"""
        import jobs.backup.backup as b
        def remember(config, destination):
            {KILL}
        b._remember_place = remember
        """
    )
    status, accepted = server.request("POST", "/api/wallets/backup", {"destination": str(destination)}, headers=ASYNC)
    assert status == 202
    server.wait_killed()
    (name,) = os.listdir(destination)

    server.start()
    status, job = server.request("GET", f"/api/jobs/{accepted['job_id']}")
    assert job["status"] == "completed" and job["result"]["recovered"] is True, job
    assert job["result"]["filename"] == name


def test_backup_killed_mid_archive_is_failed_and_leaves_nothing(server: CrashServer, tmp_path: Path) -> None:
    make_wallet(server.data_dir / "Wallets" / "Default", 50)
    destination = tmp_path / "backups"
    server.start(
        f"""
        import jobs.backup.backup as b
        def verify(*args, **kwargs):
            {KILL}
        b._verify = verify
        """
    )
    status, accepted = server.request("POST", "/api/wallets/backup", {"destination": str(destination)}, headers=ASYNC)
    server.wait_killed()
    server.start()
    status, job = server.request("GET", f"/api/jobs/{accepted['job_id']}")
    assert job["status"] == "failed" and job["message"] == "Interrupted by server restart"
    assert os.listdir(destination) == []


def test_rename_the_journal_completed_at_restart_is_completed_and_recovered(server: CrashServer) -> None:
    make_wallet(server.data_dir / "Wallets" / "Default", 3)
    server.start(
        f"""
        import jobs.rename
        def point_registry(config, old, new):
            {KILL}
        jobs.rename._point_registry = point_registry
        """
    )
    status, accepted = server.request(
        "POST", "/api/wallets/rename", {"wallet_path": "Default", "new_name": "Main"}, headers=ASYNC
    )
    assert status == 202
    server.wait_killed()

    server.start()
    status, job = server.request("GET", f"/api/jobs/{accepted['job_id']}")
    assert job["status"] == "completed", job
    main = server.data_dir.resolve() / "Wallets" / "Main"
    assert job["result"] == {
        "success": True, "message": "Wallet renamed successfully",
        "old_path": str(main.with_name("Default")), "new_path": str(main), "old_name": "Default", "new_name": "Main",
        "command": "wallet-rename", "job_id": accepted["job_id"], "recovered": True,
    }  # fmt: skip
    assert read_registry(server.data_dir / "wallet-locations.csv").entries[0].wallet_path == str(main)


def test_rename_killed_before_its_folder_moved_is_failed(server: CrashServer) -> None:
    make_wallet(server.data_dir / "Wallets" / "Default", 3)
    server.start(
        f"""
        import jobs.rename
        def rename_noreplace(old, new):
            {KILL}
        jobs.rename.rename_noreplace = rename_noreplace
        """
    )
    status, accepted = server.request(
        "POST", "/api/wallets/rename", {"wallet_path": "Default", "new_name": "Main"}, headers=ASYNC
    )
    server.wait_killed()
    server.start()
    status, job = server.request("GET", f"/api/jobs/{accepted['job_id']}")
    assert job["status"] == "failed" and job["message"] == "Interrupted by server restart"
    assert (server.data_dir / "Wallets" / "Default").is_dir()


def make_archive(server: CrashServer, tmp_path: Path, coins: int) -> Path:
    """A real backup of a Default wallet of `coins` coins, made by the server itself."""
    make_wallet(server.data_dir / "Wallets" / "Default", coins)
    server.start()
    status, body = server.request("POST", "/api/wallets/backup", {"destination": str(tmp_path / "backups")})
    assert status == 200, body
    server.stop()
    return Path(body["zip_path"])


def test_restore_already_registered_at_the_kill_is_completed_and_recovered(server: CrashServer, tmp_path: Path) -> None:
    archive = make_archive(server, tmp_path, 20)
    server.start(
        f"""
        import jobs.restore.restore as r
        _write = r.write_registry
        def write_registry(*args):
            _write(*args)
            import time; time.sleep(0.5)  # the job's "running" state reaches the store, as it would by now
            {KILL}
        r.write_registry = write_registry
        """
    )
    status, accepted = server.request(
        "POST", "/api/wallets/restore", {"zip_path": str(archive), "new_name": "Back"}, headers=ASYNC
    )
    assert status == 202, accepted
    server.wait_killed()

    server.start()
    status, job = server.request("GET", f"/api/jobs/{accepted['job_id']}")
    assert job["status"] == "completed", job
    result = job["result"]
    assert result["recovered"] is True and result["wallet_name"] == "Back" and result["total_notes"] == 20
    listing = server.request("GET", "/api/wallets/list")[1]
    assert [w["wallet_name"] for w in listing["wallets"]].count("Back") == 1


# -- 3. no orphaned temporary data ------------------------------------------------------------------


def test_restore_killed_while_the_store_writes_slowly_leaves_no_plaintext_behind(
    server: CrashServer, tmp_path: Path
) -> None:
    archive = make_archive(server, tmp_path, 300)
    wallets = server.data_dir / "Wallets"
    # Slow extraction and slow store: the kill lands with coins in the temporary folder and the
    # job's "running" state (at least) not yet on disk.
    server.start(
        DELAYED_STORE.replace("DELAY", "2.0")
        + """
import jobs.restore.extraction as extraction
_extract_write = extraction._Writer._write
def slow_extract_write(self, *args):
    time.sleep(0.01)
    return _extract_write(self, *args)
extraction._Writer._write = slow_extract_write
"""
    )
    status, accepted = server.request(
        "POST", "/api/wallets/restore", {"zip_path": str(archive), "new_name": "Back"}, headers=ASYNC
    )
    assert status == 202, accepted

    def temp_holds_coins() -> bool:
        return any((Path(p) / "Bank").is_dir() and os.listdir(Path(p) / "Bank") for p in leftovers(wallets))

    wait_for(temp_holds_coins, "the restore never started extracting")
    server.kill()
    assert leftovers(wallets)

    server.start()
    assert leftovers(wallets) == []
    assert not (wallets / "Back").exists()
    status, job = server.request("GET", f"/api/jobs/{accepted['job_id']}")
    assert job["status"] == "failed"
    server.stop()
    server.start()  # and it stays that way
    assert leftovers(wallets) == []
    shutil.rmtree(tmp_path / "backups")
