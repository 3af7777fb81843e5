"""Request line and header limits answered in JSON; the header timeout; the connection cap under a low open-file limit."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from app.main import create_app
from app.wallet.config import Config
from app.web.server import connection_cap
from tests.conftest import GuardedTestServer
from tests.test_e2e import free_port, http, server_env, stop_server

SLOW_HEADERS = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


async def expect_json_error(response, status: int, message: str) -> None:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    assert await response.json() == {"success": False, "error": message, "code": status}


# -- limits that fit the 4,096-character parameter cap (in-process server, as `python -m app` serves) ---


async def test_a_request_line_over_16_kib_is_a_json_414(client):
    await expect_json_error(
        await client.get("/api/wallets/list?x=" + "a" * 16_400), 414, "Request line is longer than 16384 bytes"
    )


async def test_a_request_line_within_16_kib_is_served(client):
    query = "&".join(f"x{i}=" + "a" * 3_990 for i in range(4))  # every parameter within its 4,096 characters
    response = await client.get("/api/wallets/list?" + query)
    assert len(query) > 15_900 and response.status == 200


async def test_a_header_over_8_kib_is_a_json_431(client):
    for size in (8_200, 1024 * 1024):  # the old limit let a 1 MiB header in, on every connection
        response = await client.get("/api/wallets/list", headers={"X-Big": "a" * size})
        await expect_json_error(response, 431, "A request header is longer than 8192 bytes")


async def test_a_header_within_8_kib_is_served(client):
    assert (await client.get("/api/wallets/list", headers={"X-Big": "a" * 8_000})).status == 200


async def test_more_than_100_headers_is_a_json_431(client):
    # The client adds Host, Accept, Accept-Encoding and User-Agent: 97 more make 101.
    headers = {f"X-H{i}": "1" for i in range(97)}
    await expect_json_error(
        await client.get("/api/wallets/list", headers=headers), 431, "More than 100 request headers"
    )
    headers = {f"X-H{i}": "1" for i in range(90)}
    assert (await client.get("/api/wallets/list", headers=headers)).status == 200


async def test_a_malformed_request_is_a_json_400(client):
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nBad Header Name: 1\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)  # then the server closes the connection
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400"
    assert b"application/json" in head
    assert json.loads(body) == {"success": False, "error": "Malformed HTTP request (BadHttpMessage)", "code": 400}


def receive_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# -- open files, slow clients and the header timeout: the real server with a low RLIMIT_NOFILE ------------


def start_limited(data_dir: Path, nofile: tuple[int, int], **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m app` started with the open-file limit `nofile` (soft, hard), as a desktop session would."""
    port = free_port()
    log_file = open(f"{data_dir}.server.log", "ab")
    with log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--port", str(port), "--data-dir", str(data_dir)],
            cwd=data_dir.parent,
            env=server_env(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile),
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if http("GET", f"{base_url}/api/health", timeout=1.0)[0] == 200:
                return proc, base_url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(Path(f"{data_dir}.server.log").read_text())


@pytest.fixture
def limited(tmp_path: Path) -> Iterator:
    started: list[subprocess.Popen[bytes]] = []

    def start(nofile: tuple[int, int], **env: str) -> tuple[subprocess.Popen[bytes], str]:
        proc, base_url = start_limited(tmp_path / "Client_Data", nofile, **env)
        started.append(proc)
        return proc, base_url

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def open_files_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit listed")


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads the limit from /proc (Linux)")
def test_the_soft_open_file_limit_is_raised_to_the_hard_one(limited):
    proc, _ = limited((256, 4096))
    assert open_files_limit(proc.pid) == 4096
    assert stop_server(proc) == 0


def slow_clients(port: int, count: int) -> list[socket.socket]:
    """`count` connections that send the start of a request and never finish its headers."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(SLOW_HEADERS)
        sockets.append(sock)
    return sockets


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts the server's open files in /proc (Linux)")
def test_more_slow_clients_than_open_files_never_lock_out_health(limited, tmp_path):
    proc, base_url = limited((256, 256), CLOUDCOIN_HEADER_TIMEOUT="30")
    port = int(base_url.rsplit(":", 1)[1])
    sockets: list[socket.socket] = []
    try:
        for _ in range(3):  # 3 × 120 slow clients: more than the 256 files the server may open
            sockets += slow_clients(port, 120)
            for _ in range(5):
                status, body = http("GET", f"{base_url}/api/health", timeout=5)
                assert status == 200 and body["status"] == "ok"
            assert len(list(Path(f"/proc/{proc.pid}/fd").iterdir())) < 256
        status, body = http("POST", f"{base_url}/api/wallets/create", body={"wallet_path": "StillServed"}, timeout=5)
        assert status == 200, body
    finally:
        for sock in sockets:
            sock.close()
    assert stop_server(proc) == 0
    log = Path(f"{tmp_path / 'Client_Data'}.server.log").read_text()
    assert "Too many open files" not in log and "out of system resource" not in log
    assert "closing the oldest idle ones" in log  # said once, not once per connection
    assert log.count("closing the oldest idle ones") == 1


def test_headers_that_do_not_arrive_in_time_close_the_connection(limited):
    proc, base_url = limited((1024, 1024), CLOUDCOIN_HEADER_TIMEOUT="1")
    port = int(base_url.rsplit(":", 1)[1])
    (sock,) = slow_clients(port, 1)
    with sock:
        started = time.monotonic()
        for _ in range(3):  # a byte now and then does not keep the connection open
            time.sleep(0.3)
            try:
                sock.sendall(b"a")
            except OSError:
                break
        assert receive_all(sock) == b""  # closed by the server, no answer
        assert time.monotonic() - started < 8
    assert http("GET", f"{base_url}/api/health")[0] == 200
    assert stop_server(proc) == 0


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One whole answer (head and Content-Length body) from a keep-alive connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def test_a_connection_in_a_request_is_never_closed_for_a_new_one(aiohttp_client, make_config):
    app = create_app(make_config())
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"done": True})

    app.router.add_get("/slow", slow)
    client = await aiohttp_client(GuardedTestServer(app, max_connections=3))
    busy = asyncio.ensure_future(client.get("/slow"))
    await asyncio.sleep(0.1)
    # A keep-alive client that has been served, idle now.
    kept_reader, kept_writer = await asyncio.open_connection(client.server.host, client.server.port)
    health_request = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n"
    kept_writer.write(health_request)
    assert (await asyncio.wait_for(read_response(kept_reader), 5)).startswith(b"HTTP/1.1 200")
    idle = []
    for _ in range(3):
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(SLOW_HEADERS)
        idle.append((reader, writer))
        await asyncio.sleep(0.05)
    health = await client.get("/api/health", headers={"Connection": "close"})
    assert health.status == 200
    # The slow clients made room, oldest first; the connection in a request and the served keep-alive
    # one kept their places.
    assert await asyncio.wait_for(idle[0][0].read(), 5) == b""
    assert await asyncio.wait_for(idle[1][0].read(), 5) == b""
    kept_writer.write(health_request)
    assert (await asyncio.wait_for(read_response(kept_reader), 5)).startswith(b"HTTP/1.1 200")
    release.set()
    response = await asyncio.wait_for(busy, 5)
    assert response.status == 200 and await response.json() == {"done": True}
    for _, writer in [*idle, (kept_reader, kept_writer)]:
        writer.close()


def test_the_connection_cap_stays_below_the_open_file_limit():
    config = Config()
    assert connection_cap(config, 1 << 20) == config.max_connections  # the setting, when files are plenty
    reserve = 1024 - connection_cap(Config(max_connections=5000), 1024)
    assert 0 < reserve < 512  # room for the server's own files and an accept burst
    assert connection_cap(config, 256) == 256 - reserve
    assert connection_cap(config, 16) == 1  # never none at all


def test_serving_lets_the_loop_take_the_gil_within_half_a_millisecond(monkeypatch, make_config):
    """A job thread running Python holds the GIL up to the switch interval; the loop waits that long."""
    import app.web.server as server

    seen: list[float] = []

    def fake_run(coro):
        seen.append(sys.getswitchinterval())
        coro.close()

    before = sys.getswitchinterval()
    monkeypatch.setattr(server.asyncio, "run", fake_run)
    try:
        server.serve(web.Application(), make_config())
    finally:
        sys.setswitchinterval(before)
    assert seen == [server.LOOP_SWITCH_INTERVAL_S] and server.LOOP_SWITCH_INTERVAL_S <= 0.0005
