"""What the benchmarks share: the `python -m app` they measure, HTTP calls, /api/health polling, wallets, results."""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent

# Disk use of the reference wallet: every coin file takes a 4 KiB block; records ≈ 1 MB.
WALLET_BYTES_PER_COIN = 4096 + 64


# -- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One request: params go in the query string, body as JSON; the status and the parsed answer."""
    query = f"?{urlencode(params)}" if params else ""
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, f"{path}{query}", body=data, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, {"unparsed": raw[:500].decode(errors="replace")}


class Server:
    """`python -m app` on a free port with its own data directory; stopped by stop() (SIGTERM, then SIGKILL).

    The caller's CLOUDCOIN_* settings are dropped so every run measures the defaults; `env` adds some back.
    `nofile` starts it under that open-file limit (soft and hard); `output` keeps its stdout and stderr.
    """

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        *,
        nofile: int | None = None,
        output: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.output = output
        self.port = free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDCOIN_")}
        environ["PYTHONPATH"] = str(ROOT)
        environ.update(env or {})
        limit = None if nofile is None else (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
        with open(output or os.devnull, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "--port", str(self.port), "--data-dir", str(data_dir)],
                cwd=ROOT,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=limit,
            )
        self.pid = self.process.pid
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode}\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                if call(conn, "GET", "/api/health")[0] == 200:
                    conn.close()
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"the server did not answer /api/health within 30 s\n{self.log_tail()}")

    def connect(self, timeout: float = 600) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def proc_status(self, field: str) -> float:
        """A memory field of /proc/<pid>/status (VmHWM, VmRSS) in MB."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        raise KeyError(field)

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def reset_peak(self) -> bool:
        """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs). False if not permitted."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w", encoding="ascii") as refs:
                refs.write("5")
            return True
        except OSError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        log = self.data_dir / "logs" / "server.log"
        try:
            return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def register(conn: http.client.HTTPConnection, path: Path) -> dict[str, Any]:
    """POST /api/wallets/locations: registers the wallet `path`, or every wallet inside it; the answer."""
    status, body = call(conn, "POST", "/api/wallets/locations", {"path": str(path)})
    if status != 200 or not body.get("success"):
        raise SystemExit(f"registering {path} failed: HTTP {status} {json.dumps(body)[:500]}")
    return body


def parse_time(value: str | None) -> float | None:
    """A job's ISO timestamp (created_at, started_at, finished_at) as a POSIX time."""
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# -- /api/health meanwhile ----------------------------------------------------------------------


class Poller(threading.Thread):
    """GET `path` every `interval` seconds (from `offset` on) on one keep-alive connection; latencies in ms.

    Runs until `stop` is set (its own event unless one is shared); as a context manager it polls for the
    duration of the `with` block.
    """

    def __init__(
        self,
        port: int,
        path: str,
        interval: float,
        *,
        offset: float = 0.0,
        timeout: float = 30,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.interval, self.offset, self.timeout = port, path, interval, offset, timeout
        self.latencies: list[float] = []
        self.errors = 0
        self.stop = stop or threading.Event()

    def __enter__(self) -> Poller:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        next_tick = time.perf_counter() + self.offset
        while not self.stop.wait(max(0.0, next_tick - time.perf_counter())):
            started = time.perf_counter()
            try:
                status, _ = call(conn, "GET", self.path)
            except (OSError, http.client.HTTPException):
                status = -1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            if status == 200:
                self.latencies.append((time.perf_counter() - started) * 1000)
            else:
                self.errors += 1
            next_tick += self.interval
        conn.close()


class HealthPoller(Poller):
    """GET /api/health every `interval` seconds on one keep-alive connection; latencies in ms."""

    def __init__(self, port: int, interval: float = 0.010) -> None:
        super().__init__(port, "/api/health", interval)


def idle_health(port: int, interval: float = 0.010, seconds: float = 1.0) -> HealthPoller:
    """The poller's figures over `seconds` with nothing else asked of the server."""
    with HealthPoller(port, interval) as idle:
        time.sleep(seconds)
    return idle


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- the wallets --------------------------------------------------------------------------------


def wallet_name(size: int) -> str:
    return f"Bench_{size}"


def alternate(wallet: Path) -> Path:
    """The name the rename benchmarks give a wallet before renaming it back."""
    return wallet.with_name(f"{wallet.name} renamed")


def rename_back(current: Path, wallet: Path) -> bool:
    """Put a wallet left under `current` by an interrupted rename back under its own name, on disk."""
    if current != wallet and current.is_dir() and not wallet.exists():
        os.rename(current, wallet)
        return True
    return False


def build_wallet(coins: int, dest: Path, name: str | None = None, *, announce: bool = False) -> Path:
    """Build (or reuse) the reference wallet DEST/NAME with bench/make_wallet.py, in its own process."""
    name = name or wallet_name(coins)
    rename_back(alternate(dest / name), dest / name)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "make_wallet.py"), str(coins), "--dest", str(dest), "--name", name],
        check=True,
        capture_output=True,
        text=True,
    )
    wallet = Path(out.stdout.strip().splitlines()[-1])
    if announce:
        print(f"wallet {wallet} ready in {time.perf_counter() - started:.1f} s", flush=True)
    return wallet


def settle_disk(quiet_for: float = 3.0, limit: float = 180.0) -> float:
    """`sync`, then wait until no disk has written or discarded for `quiet_for` seconds (at most
    `limit`); the seconds it took. Removing 100,000 files (the outputs of the size before) keeps the
    file system busy with its journal and discards long after the removal returns, and that work
    would land on the next timed runs."""
    os.sync()
    started = quiet_since = time.monotonic()
    last = _disk_writes()
    while time.monotonic() - started < limit:
        time.sleep(0.5)
        now = _disk_writes()
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_for:
            break
    return time.monotonic() - started


def _disk_writes() -> int:
    """Sectors written and discarded so far on every disk (/proc/diskstats; 0 where there is none)."""
    try:
        lines = Path("/proc/diskstats").read_text().splitlines()
    except OSError:
        return 0
    total = 0
    for line in lines:
        fields = line.split()
        total += sum(int(fields[i]) for i in (9, 16) if i < len(fields))
    return total


def warm_cache(wallet: Path) -> tuple[int, float]:
    """Read every file once (untimed for the figures): the page cache is then warm."""
    started = time.perf_counter()
    count = 0
    for folder, _, files in os.walk(wallet):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as handle:
                while handle.read(1 << 20):
                    pass
            count += 1
    return count, time.perf_counter() - started


# -- the results file ---------------------------------------------------------------------------


def write_results(path: Path, fields: dict[str, Any]) -> None:
    """Write the command, date and CPU count, then `fields`, as JSON to `path`; say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "cpus": os.cpu_count(),
                **fields,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\nwritten: {path}")


# -- the verdicts both benchmarks print -----------------------------------------------------------

#: quality.md P3: GET /api/health while a backup, restore or verify runs
P3_P99_MS, P3_MAX_MS, P3_AIM_P99_MS = 10.0, 50.0, 3.0


def latency_summary(latencies: list[float], errors: int = 0) -> dict[str, Any]:
    if not latencies:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "samples": 0, "errors": errors}
    return {
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
        "samples": len(latencies),
        "errors": errors,
    }


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def health_ok(h: dict[str, Any]) -> bool | None:
    if not h or not h.get("samples"):
        return None
    return h["p99_ms"] <= P3_P99_MS and h["max_ms"] <= P3_MAX_MS and not h.get("errors")
