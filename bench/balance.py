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
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, from any working directory
from common import ROOT, HealthPoller, Server, build_wallet, call, idle_health, percentile, register  # noqa: E402


def describe(latencies: list[float], errors: int = 0) -> str:
    return (
        f"p50 {percentile(latencies, 50):.2f} ms, p99 {percentile(latencies, 99):.2f} ms, "
        f"max {max(latencies):.2f} ms, {len(latencies)} samples" + (f", {errors} failed" if errors else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.010, help="health polling interval, seconds")
    parser.add_argument("--dest", type=Path, default=ROOT / "bench" / "out" / "balance")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    wallet = build_wallet(args.coins, args.dest, f"Balance_{args.coins}")
    print(f"wallet: {wallet} ({args.coins} coins, ready in {time.perf_counter() - started:.1f} s)")
    with tempfile.TemporaryDirectory(prefix="cc-balance-") as tmp:
        server = Server(Path(tmp) / "Client_Data")
        try:
            conn = server.connect(timeout=300)
            register(conn, wallet)
            params = {"wallet_path": str(wallet)}
            status, body = call(conn, "GET", "/api/wallets/balance", params)  # warms the page cache
            assert status == 200 and body["total_notes"] == args.coins, body

            idle = idle_health(server.port, args.interval)

            times, during, failed = [], [], 0
            for run in range(args.runs):
                with HealthPoller(server.port, args.interval) as poller:
                    time.sleep(0.05)  # the poller is running before the balance starts
                    t0 = time.perf_counter()
                    status, body = call(conn, "GET", "/api/wallets/balance", params)
                    elapsed = time.perf_counter() - t0
                assert status == 200 and body["total_notes"] == args.coins, body
                times.append(elapsed)
                during.extend(poller.latencies)
                failed += poller.errors
                print(
                    f"run {run + 1}: balance {elapsed * 1000:.0f} ms (total_value {body['total_value']}, "
                    f"{body['total_notes']} notes); health {describe(poller.latencies, poller.errors)}"
                )
            print(
                f"balance of {args.coins} coins: median {statistics.median(times) * 1000:.0f} ms "
                f"over {args.runs} runs (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})"
            )
            print(f"health during the balances: {describe(during, failed)}")
            print(f"health with the server idle: {describe(idle.latencies, idle.errors)}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
