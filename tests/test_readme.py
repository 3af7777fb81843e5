"""The README works as written: its example session runs as a script, and what it promises a newcomer holds."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.test_e2e import REPO, free_port, server_env

README = (REPO / "README.md").read_text(encoding="utf-8")
MARKER = "<!-- example-session: tests/test_readme.py runs the next block -->"


def example_session() -> str:
    after = README.split(MARKER, 1)[1]
    match = re.match(r"\s*```sh\n(.*?)\n```", after, re.S)
    assert match, "the marker is followed by a ```sh block"
    return match.group(1)


def json_lines(output: str) -> list[dict[str, Any]]:
    found = []
    for line in output.splitlines():
        line = line.removeprefix("data: ")
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.mark.skipif(shutil.which("curl") is None, reason="the session calls the API with curl (apt-get install curl)")
@pytest.mark.skipif(
    not (REPO / ".venv" / "bin" / "cloudcoin-wallet").exists(),
    reason="the session uses the project's environment, .venv (made by make run / make test)",
)
def test_the_example_session_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(
        {"HOME": str(tmp_path), "CLOUDCOIN_PORT": str(port), "CLOUDCOIN_SERVER": f"http://127.0.0.1:{port}"}
    )
    env.pop("PYTHONPATH", None)  # exactly a newcomer's shell: the installed environment, nothing else
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", example_session()],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the server too, if the script stopped early
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, f"{out[-3000:]}\n{err[-3000:]}"

    bodies = json_lines(out)
    assert not [
        b for b in bodies if b.get("success") is False or b.get("error") is True or b.get("status") == "error"
    ], "no step was refused"
    balance = next(b for b in bodies if b.get("command") == "wallet-balance")
    assert balance["total_notes"] == 1000
    first, *_ = [b for b in bodies if b.get("command") == "wallet-backup"]
    assert first["files_added"] == 1000 and first["files_reencrypted_for_backup"] == 0
    assert next(b for b in bodies if b.get("command") == "backup-verify")["ok"] is True
    accepted = next(b for b in bodies if "job_id" in b and b.get("status") == "queued")
    job = next(b for b in bodies if b.get("id") == accepted["job_id"] and b.get("status") == "completed")
    assert job["result"]["files_reencrypted_for_backup"] == 1000, "after the login, backups re-encrypt"
    assert "Wallet backup created successfully" in out  # the client's result
    assert (tmp_path / "cc-demo" / "Wallets" / "Rainy Day" / "Bank").is_dir()
    archives = sorted(p.name for p in (tmp_path / "Backups").iterdir())
    assert len(archives) == 3 and all(name.startswith("CloudCoin-Wallet-Backup_Savings_") for name in archives)


def test_the_readme_says_what_a_newcomer_needs() -> None:
    for promise in (
        ".venv/bin/python -m app",
        ".venv/bin/cloudcoin-wallet",
        "zip_path",
        "job_id",
        "Only the last folder of the destination is created",
        "allowed_origins",
        "file://",
        '{"error": true, "message"',
        '{"status": "error", "error"',
        '{"success": false, "error"',
        "--log-level",
        "--version",
    ):
        assert promise in README, promise
    assert "../shared" not in README


@pytest.mark.parametrize("origin", ["null", "app://cloudcoin"])
async def test_allowed_origins_lets_a_file_or_custom_scheme_gui_in(make_client: Any, origin: str) -> None:
    refused = await (await make_client()).get("/api/wallets/list", headers={"Origin": origin})
    assert refused.status == 403
    client = await make_client(allowed_origins=("null", "app://cloudcoin"))
    response = await client.get("/api/wallets/list", headers={"Origin": origin})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == origin
