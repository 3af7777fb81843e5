"""P10: a plan run to two destinations of the 100,000-coin wallet against one API backup of it (≤ 1.5×).

    python bench/plans.py [--coins N] [--rounds K] [--dest DIR]

Builds the reference wallet with bench/make_wallet.py (or reuses it), starts `python -m app` on a free
port with a temporary data directory, registers the wallet, creates a plan with two destinations
(keep.last=1, so the destinations do not fill up), then alternates in the same run: one synchronous
`POST /api/wallets/backup` into a third folder, one synchronous `POST /api/backup-plans/{id}/run`.
Each round's archives are deleted before the next. It prints the median wall-clock times, the ratio
and the goal. The walk happens once per plan run: the second destination gets a verified copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, from any working directory
from common import ROOT, Server, build_wallet, call, register, warm_cache  # noqa: E402

GOAL_RATIO = 1.5


def empty(folder: Path) -> None:
    for name in os.listdir(folder):
        os.unlink(folder / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=100_000, help="coins in the wallet (default 100000)")
    parser.add_argument("--rounds", type=int, default=3, help="backup/plan-run pairs to time (default 3)")
    parser.add_argument("--dest", type=Path, default=ROOT / "bench" / "out" / "wallets", help="where the wallet lives")
    args = parser.parse_args(argv)

    print(f"building (or reusing) a {args.coins:,}-coin wallet in {args.dest} …", file=sys.stderr)
    wallet = build_wallet(args.coins, args.dest.resolve())
    warm_cache(wallet)
    backup_s: list[float] = []
    plan_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cloudcoin-bench-plans-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        one, first, second = root / "backup", root / "first", root / "second"
        for folder in (one, first, second):
            folder.mkdir()
        server = Server(root / "Client_Data", env={"CLOUDCOIN_LOG_LEVEL": "WARNING"})
        try:
            conn = server.connect(timeout=1800)
            register(conn, wallet)
            status, plan = call(conn, "POST", "/api/backup-plans", body={
                "wallet_path": str(wallet), "destinations": [str(first), str(second)],
                "schedule": "0 3 1 1 *", "keep": {"last": 1}, "name": "bench",
            })  # fmt: skip
            if status != 201:
                raise SystemExit(f"creating the plan failed: {status} {plan}")
            for n in range(args.rounds):
                started = time.perf_counter()
                status, body = call(
                    conn, "POST", "/api/wallets/backup", {"wallet_path": str(wallet), "destination": str(one)}
                )
                backup_s.append(time.perf_counter() - started)
                if status != 200:
                    raise SystemExit(f"backup {n + 1} failed: {status} {body}")
                started = time.perf_counter()
                status, run = call(conn, "POST", f"/api/backup-plans/{plan['id']}/run", body={})
                plan_s.append(time.perf_counter() - started)
                if status != 200 or run.get("status") != "completed":
                    raise SystemExit(f"plan run {n + 1} failed: {status} {run}")
                print(f"round {n + 1}: backup {backup_s[-1]:.2f} s, plan run {plan_s[-1]:.2f} s "
                      f"({run['destinations'][0]['bytes'] / 1e6:.1f} MB × 2)", file=sys.stderr)  # fmt: skip
                for folder in (one, first, second):
                    empty(folder)
            conn.close()
        finally:
            server.stop()
            shutil.rmtree(root / "Client_Data", ignore_errors=True)

    backup, plan_run = statistics.median(backup_s), statistics.median(plan_s)
    ratio = plan_run / backup
    print(f"wallet: {wallet} ({args.coins:,} coins), {args.rounds} rounds, alternated")
    print(f"one API backup (POST /api/wallets/backup, sync):          median {backup:.2f} s")
    print(f"plan run to two destinations (POST …/run, sync, verified): median {plan_run:.2f} s")
    verdict = "meets" if ratio <= GOAL_RATIO else "MISSES"
    print(f"P10 ratio {ratio:.2f}× (goal ≤ {GOAL_RATIO}×): {verdict}")
    return 0 if ratio <= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
