"""Issue 10, item 15: what the server creates in Client_Data is private, whatever the umask says."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.crashserver import CrashServer
from tests.crashserver import server as server  # noqa: F401 - the fixture


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_client_data_is_0700_and_the_log_and_job_store_0600_under_a_permissive_umask(
    server: CrashServer, tmp_path: Path
) -> None:
    server.start(umask=0o022)
    status, body = server.request("POST", "/api/wallets/backup", {"destination": str(tmp_path / "b")})
    assert status == 200, body
    data = server.data_dir
    store = data / "jobs" / "jobs.sqlite3"
    assert {
        "Client_Data": mode(data),
        "logs": mode(data / "logs"),
        "jobs": mode(data / "jobs"),
        "server.log": mode(data / "logs" / "server.log"),
        "jobs.sqlite3": mode(store),
    } == {
        "Client_Data": "0o700",
        "logs": "0o700",
        "jobs": "0o700",
        "server.log": "0o600",
        "jobs.sqlite3": "0o600",
    }
    for suffix in ("-wal", "-shm"):  # SQLite's companions, while the server runs
        companion = store.with_name(store.name + suffix)
        assert companion.exists() and mode(companion) == "0o600", suffix
    server.stop()


def test_files_an_older_version_left_0644_are_made_0600(server: CrashServer) -> None:
    for folder in ("logs", "jobs"):
        (server.data_dir / folder).mkdir(parents=True, mode=0o700)
    for path in (server.data_dir / "logs" / "server.log", server.data_dir / "jobs" / "jobs.sqlite3"):
        path.touch()
        path.chmod(0o644)
    server.start(umask=0o022)
    assert mode(server.data_dir / "logs" / "server.log") == "0o600"
    assert mode(server.data_dir / "jobs" / "jobs.sqlite3") == "0o600"
