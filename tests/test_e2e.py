"""End to end: the real `python -m app` in a subprocess on a free port, called over HTTP, stopped by SIGTERM.

`start_server(data_dir, *extra_args)` and `stop_server(proc)` are meant for reuse: other end-to-end
tests import them (`from tests.test_e2e import start_server, stop_server`) or use the `server` fixture,
which stops whatever it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any CLOUDCOIN_* setting (they would override flags' neighbours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDCOIN_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def http(
    method: str,
    url: str,
    *,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, Any]]:
    """One request with the standard library: (status, JSON body); error statuses are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def start_server(
    data_dir: Path, *extra_args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m app` on a free port with `--data-dir data_dir`; return once /api/health answers.

    The server's output goes to `<data_dir>.server.log` (beside the data directory, so the test can read it).
    """
    port = free_port()
    log_path = Path(f"{data_dir}.server.log")
    log_file = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--port", str(port), "--data-dir", str(data_dir), *extra_args],
            cwd=cwd or data_dir.parent,
            env=server_env(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    finally:
        log_file.close()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering:\n{log_path.read_text()}")
        try:
            status, _ = http("GET", f"{base_url}/api/health", timeout=1.0)
            if status == 200:
                return proc, base_url
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"server did not answer within {START_TIMEOUT_S} s:\n{log_path.read_text()}")
        time.sleep(0.05)


def stop_server(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM, then wait; returns the exit code (kills and raises when it does not stop in time)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], str]]]:
    """`proc, base_url = server(data_dir, *args)`; every server still running at the end is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(data_dir: Path | None = None, *extra_args: str, **kwargs: Any) -> tuple[subprocess.Popen[bytes], str]:
        proc, base_url = start_server(data_dir or tmp_path / "Client_Data", *extra_args, **kwargs)
        started.append(proc)
        return proc, base_url

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_server_creates_the_data_dir_answers_over_http_and_stops_on_sigterm(server, tmp_path):
    data_dir = tmp_path / "Client_Data"
    proc, base_url = server(data_dir)

    default = data_dir / "Wallets" / "Default"
    from app.wallet.wallets import WALLET_FOLDERS

    assert sorted(p.name for p in default.iterdir() if p.is_dir()) == sorted(WALLET_FOLDERS)
    assert len(WALLET_FOLDERS) == 19
    assert (default / "transactions.csv").read_text().startswith("Symbol,Task ID,Date & Time,")
    assert (default / "config.toml").is_file()
    assert str(default) in (data_dir / "wallet-locations.csv").read_text(encoding="utf-8")

    status, body = http("GET", f"{base_url}/api/wallets/list")
    assert status == 200
    assert body["command"] == "wallet-list" and body["count"] == 1
    assert body["wallets"][0]["wallet_path"] == str(default) and body["wallets"][0]["active"] is True

    status, body = http("GET", f"{base_url}/api/wallets/balance")
    assert status == 200
    assert (body["command"], body["wallet_name"], body["total_value"]) == ("wallet-balance", "Default", 0)

    status, body = http("GET", f"{base_url}/api/nowhere")
    assert (status, body["code"]) == (404, 404)

    started = time.monotonic()
    assert stop_server(proc) == 0
    assert time.monotonic() - started < STOP_TIMEOUT_S
    assert (data_dir / "logs" / "server.log").is_file()


def test_server_reads_coins_written_before_it_started(server, tmp_path):
    from tests.conftest import write_coins

    data_dir = tmp_path / "Client_Data"
    proc, base_url = server(data_dir)
    assert stop_server(proc) == 0
    write_coins(data_dir / "Wallets" / "Default" / "Bank", [1, 2, 3], denomination=2)
    proc, base_url = server(data_dir)
    status, body = http("POST", f"{base_url}/api/wallets/create", body={"wallet_path": "Second"})
    assert status == 200 and body["wallet_name"] == "Second"
    status, body = http("GET", f"{base_url}/api/wallets/balance?wallet_path=Default")
    assert (status, body["total_value"], body["bank_notes"]) == (200, 300, 3)
    assert stop_server(proc) == 0


def test_server_runs_with_no_config_file_from_another_directory(server, tmp_path):
    elsewhere = tmp_path / "some" / "other" / "dir"
    elsewhere.mkdir(parents=True)
    proc, base_url = server(tmp_path / "data", cwd=elsewhere)
    assert http("GET", f"{base_url}/api/health")[0] == 200
    assert not (elsewhere / "Client_Data").exists()
    assert stop_server(proc) == 0


def test_token_from_the_environment_is_required(server, tmp_path):
    proc, base_url = server(tmp_path / "Client_Data", env={"CLOUDCOIN_API_TOKEN": "e2e-token"})
    assert http("GET", f"{base_url}/api/wallets/list")[0] == 401
    assert http("GET", f"{base_url}/api/wallets/list", headers={"Authorization": "Bearer e2e-token"})[0] == 200
    assert stop_server(proc) == 0


def test_foreign_host_is_refused_over_a_real_socket(server, tmp_path):
    proc, base_url = server(tmp_path / "Client_Data")
    status, body = http("GET", f"{base_url}/api/wallets/list", headers={"Host": "evil.example"})
    assert (status, body["code"]) == (403, 403)
    assert stop_server(proc) == 0


def test_bad_configuration_exits_2_with_a_message(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[jobs]\nworkers = 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "app", "--config", str(config), "--data-dir", str(tmp_path / "d")],
        cwd=tmp_path,
        env=server_env(),
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"workers" in result.stderr
    assert not (tmp_path / "d").exists()
