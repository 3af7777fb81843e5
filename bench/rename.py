"""P5: the time to rename a 100,000-coin wallet through the API (goal ≤ 50 ms, quality.md).

    python bench/rename.py [--coins N] [--renames K] [--dest DIR]

Builds the reference wallet with bench/make_wallet.py (or reuses it), starts `python -m app` on a free
port with a temporary data directory, registers the wallet through /api/wallets/locations, then renames
it back and forth through GET /api/wallets/rename (the synchronous endpoint: the answer arrives once the
folder and the registry have both changed) and prints the median wall-clock time per request against
the goal. An even number of renames leaves the wallet under its own name; so does an interruption.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, from any working directory
from common import ROOT, Server, alternate, build_wallet, call, parse_time, register, rename_back  # noqa: E402

GOAL_MS = 50.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=100_000, help="coins in the wallet (default 100000)")
    parser.add_argument("--renames", type=int, default=10, help="renames to time, at least 5 (default 10)")
    parser.add_argument("--dest", type=Path, default=ROOT / "bench" / "out" / "wallets", help="where the wallet lives")
    args = parser.parse_args(argv)
    if args.renames < 5:
        parser.error("--renames must be at least 5")
    renames = args.renames + args.renames % 2  # even: the wallet ends under its own name

    print(f"building (or reusing) a {args.coins:,}-coin wallet in {args.dest} …", file=sys.stderr)
    wallet = build_wallet(args.coins, args.dest.resolve())
    names = [wallet.name, alternate(wallet).name]

    times_ms: list[float] = []
    job_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cloudcoin-bench-rename-", ignore_cleanup_errors=True) as tmp:
        server = Server(Path(tmp) / "Client_Data", env={"CLOUDCOIN_LOG_LEVEL": "WARNING"})
        current = wallet
        try:
            conn = server.connect(timeout=30)
            register(conn, wallet)
            for n in range(renames):
                target = names[(n + 1) % 2]
                started = time.perf_counter()
                status, body = call(
                    conn, "GET", "/api/wallets/rename", {"wallet_path": str(current), "new_name": target}
                )
                elapsed = (time.perf_counter() - started) * 1000
                if status != 200:
                    raise SystemExit(f"rename {n + 1} failed: {status} {body}")
                current = Path(body["new_path"])
                times_ms.append(elapsed)
                _, job = call(conn, "GET", f"/api/jobs/{body['job_id']}")
                job_ms.append((parse_time(job["finished_at"]) - parse_time(job["started_at"])) * 1000)
            conn.close()
        finally:
            server.stop()
            rename_back(current, wallet)

    median = statistics.median(times_ms)
    verdict = "meets" if median <= GOAL_MS else "MISSES"
    print(f"wallet: {wallet} ({args.coins:,} coins)")
    print(
        f"rename through the API (GET /api/wallets/rename, sync): median {median:.1f} ms, "
        f"min {min(times_ms):.1f} ms, max {max(times_ms):.1f} ms over {len(times_ms)} renames"
    )
    print(f"  of which the job itself (started_at → finished_at): median {statistics.median(job_ms):.1f} ms")
    print(f"P5 goal ≤ {GOAL_MS:.0f} ms: {verdict} ({median:.1f} ms)")
    return 0 if median <= GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
