"""The time of GET /api/wallets/balance on a 100,000-coin wallet, and /api/health's latency meanwhile.

    python bench/balance.py [--coins N] [--runs R] [--interval S] [--dest DIR]

Builds the reference wallet with bench/make_wallet.py (or reuses it), starts `python -m app` on a free
port with a temporary data directory, registers the wallet through /api/wallets/locations and warms
the page cache with one balance. Then, R times: a thread polls GET /api/health every S seconds (10 ms
by default) on its own keep-alive connection while the main thread times one balance. It prints each
balance time and the median, and the health latencies (p50 / p99 / max / samples) during the balances
and, for comparison, with the server idle. Not a test: no figure is asserted.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_wallet(coins: int, dest: Path) -> Path:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "make_wallet.py"), str(coins), "--dest", str(dest),
         "--name", f"Balance_{coins}"],
        check=True, capture_output=True, text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def call(conn: http.client.HTTPConnection, method: str, path: str, params: dict[str, str] | None = None) -> tuple[int, dict]:
    query = f"?{urlencode(params)}" if params else ""
    conn.request(method, f"{path}{query}")
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDCOIN_")}
    env["PYTHONPATH"] = str(ROOT)
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=data_dir.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            if call(conn, "GET", "/api/health")[0] == 200:
                conn.close()
                return server, port
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("the server did not answer within 20 s")


class HealthPoller(threading.Thread):
    """GET /api/health every `interval` seconds until stopped; latencies in milliseconds."""

    def __init__(self, port: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.port, self.interval = port, interval
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        next_tick = time.perf_counter()
        while not self.stop.is_set():
            started = time.perf_counter()
            status, _ = call(conn, "GET", "/api/health")
            self.latencies.append((time.perf_counter() - started) * 1000)
            assert status == 200, status
            next_tick += self.interval
            time.sleep(max(0.0, next_tick - time.perf_counter()))
        conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def describe(latencies: list[float]) -> str:
    return (f"p50 {percentile(latencies, 50):.2f} ms, p99 {percentile(latencies, 99):.2f} ms, "
            f"max {max(latencies):.2f} ms, {len(latencies)} samples")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.010, help="health polling interval, seconds")
    parser.add_argument("--dest", type=Path, default=ROOT / "bench" / "out" / "balance")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    wallet = build_wallet(args.coins, args.dest)
    print(f"wallet: {wallet} ({args.coins} coins, ready in {time.perf_counter() - started:.1f} s)")
    with tempfile.TemporaryDirectory(prefix="cc-balance-") as tmp:
        server, port = start_server(Path(tmp) / "Client_Data")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            status, body = call(conn, "POST", "/api/wallets/locations", {"path": str(wallet)})
            assert status == 200, body
            params = {"wallet_path": str(wallet)}
            status, body = call(conn, "GET", "/api/wallets/balance", params)  # warms the page cache
            assert status == 200 and body["total_notes"] == args.coins, body

            idle = HealthPoller(port, args.interval)
            idle.start()
            time.sleep(1.0)
            idle.stop.set()
            idle.join()

            times, during = [], []
            for run in range(args.runs):
                poller = HealthPoller(port, args.interval)
                poller.start()
                time.sleep(0.05)  # the poller is running before the balance starts
                t0 = time.perf_counter()
                status, body = call(conn, "GET", "/api/wallets/balance", params)
                elapsed = time.perf_counter() - t0
                poller.stop.set()
                poller.join()
                assert status == 200 and body["total_notes"] == args.coins, body
                times.append(elapsed)
                during.extend(poller.latencies)
                print(f"run {run + 1}: balance {elapsed * 1000:.0f} ms "
                      f"(total_value {body['total_value']}, {body['total_notes']} notes); health {describe(poller.latencies)}")
            print(f"balance of {args.coins} coins: median {statistics.median(times) * 1000:.0f} ms "
                  f"over {args.runs} runs (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
            print(f"health during the balances: {describe(during)}")
            print(f"health with the server idle: {describe(idle.latencies)}")
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
