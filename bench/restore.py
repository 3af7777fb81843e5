"""P8, P9 (and P3, P4 for them) of quality.md: the API restore and verify against `unzip -q` and `unzip -tq`, in one run.

    python bench/restore.py [--sizes 10000,100000,300000] [--runs 3] [--out DIR]

For each size it builds (or reuses) the reference wallet with bench/make_wallet.py under DIR/wallets,
starts a fresh `python -m app` with a temporary data directory, registers the wallet, makes one
backup of it through the API (untimed) and reads that archive once (the page cache is warm). Then,
--runs times, alternately:

- `unzip -q ARCHIVE -d <empty folder>` and the synchronous POST /api/wallets/restore of the same
  archive into an empty location under a new name (P8: ratio of the medians);
- `unzip -tq ARCHIVE` and POST /api/wallets/backup/verify of it (P9).

Every output stays until the size is done (removing 100,000 files loads the file system for a
while, which would land on the next timed run), and `sync` runs (untimed) before every timed step,
so that neither side pays for the other's writeback. Before each size it waits (untimed) until the
disk has been idle for 3 s, as the removal of the size before keeps the file system busy after it
returns. While each API call runs, a thread polls GET /api/health every 10 ms (P3). The server's peak RSS mark is reset before each API call
(/proc/<pid>/clear_refs) and its VmHWM read after it (P4: 300,000 against 10,000). It prints a table
with PASS/FAIL per goal and writes the figures to DIR/restore-results.json. Not a test: the figures
are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, from any working directory
from common import (  # noqa: E402
    P3_MAX_MS,
    P3_P99_MS,
    ROOT,
    HealthPoller,
    Server,
    build_wallet,
    call,
    health_ok,
    idle_health,
    latency_summary,
    register,
    settle_disk,
    verdict,
    write_results,
)

# quality.md
P8_GOAL, P8_AIM = 1.0, 0.7
P9_GOAL, P9_AIM = 3.0, 2.0
P4_MAX_MB, P4_GROWTH = 120.0, 0.15
GOAL_SIZE = 100_000
P4_SIZES = (10_000, 300_000)


def record(
    into: dict[str, list[Any]], reference: str, ref_s: float, api: str, api_s: float, poller: HealthPoller, hwm: float
) -> None:
    """One timed pair of a run: kept for the medians and printed as a line."""
    into["ref_s"].append(ref_s)
    into["api_s"].append(api_s)
    into["latencies"].extend(poller.latencies)
    into["errors"].append(poller.errors)
    into["vmhwm_mb"].append(hwm)
    h = latency_summary(poller.latencies, poller.errors)
    print(
        f"  {reference} {ref_s:.2f} s, {api} {api_s:.2f} s (health p99 {h['p99_ms']} "
        f"max {h['max_ms']} ms, {h['samples']} samples; VmHWM {hwm:.1f} MB)",
        flush=True,
    )


def timed(command: list[str]) -> float:
    os.sync()  # untimed: neither side pays for the other's writeback
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def api_call(server: Server, path: str, params: dict[str, str]) -> tuple[float, HealthPoller, dict[str, Any], float]:
    """One synchronous API call with health polled meanwhile: (seconds, poller, answer, VmHWM MB of this call)."""
    os.sync()  # untimed, as before each reference run
    server.reset_peak()
    conn = server.connect()
    try:
        with HealthPoller(server.port) as poller:
            time.sleep(0.05)  # the poller runs before the call starts
            started = time.perf_counter()
            status, body = call(conn, "POST", path, params)
            elapsed = time.perf_counter() - started
    finally:
        conn.close()
    if status != 200 or not body.get("success"):
        raise SystemExit(f"{path} failed: HTTP {status} {json.dumps(body)[:1000]}\n{server.log_tail()}")
    return elapsed, poller, body, server.proc_status("VmHWM")


def make_archive(server: Server, wallet: Path, work: Path) -> Path:
    conn = server.connect()
    status, body = call(
        conn, "POST", "/api/wallets/backup", {"wallet_path": str(wallet), "destination": str(work / "backup")}
    )
    conn.close()
    if status != 200 or not body.get("success"):
        raise SystemExit(f"backup failed: HTTP {status} {json.dumps(body)[:1000]}\n{server.log_tail()}")
    archive = Path(body["zip_path"])
    with open(archive, "rb") as fh:  # warm
        while fh.read(1 << 24):
            pass
    return archive


def bench_size(size: int, wallet: Path, runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {"size": size, "wallet": str(wallet)}
    with tempfile.TemporaryDirectory(prefix=f"cc-bench-restore-{size}-") as tmp:
        work = Path(tmp)
        server = Server(work / "Client_Data")
        try:
            conn = server.connect()
            register(conn, wallet)
            conn.close()
            archive = make_archive(server, wallet, work)
            result["archive_bytes"] = archive.stat().st_size
            idle = idle_health(server.port)
            result["health_idle"] = latency_summary(idle.latencies, idle.errors)
            result["rss_idle_mb"] = round(server.proc_status("VmRSS"), 1)
            print(f"  {size}: server pid {server.pid}, archive {archive.stat().st_size / 1e6:.1f} MB", flush=True)
            passes: dict[str, dict[str, list[Any]]] = {
                k: {"ref_s": [], "api_s": [], "latencies": [], "errors": [], "vmhwm_mb": []}
                for k in ("restore", "verify")
            }
            for run in range(runs):
                out = work / f"unzip-{run}"
                out.mkdir()
                u = timed(["unzip", "-q", str(archive), "-d", str(out)])
                location = work / f"restored-{run}"
                location.mkdir()
                a, poller, body, hwm = api_call(
                    server,
                    "/api/wallets/restore",
                    {"zip_path": str(archive), "location": str(location), "new_name": f"R{run}"},
                )
                if body.get("files_restored", 0) < size:
                    print(f"  API PROBLEM: files_restored {body.get('files_restored')} < {size}", flush=True)
                record(passes["restore"], f"{size} run {run + 1}: unzip -q", u, "API restore", a, poller, hwm)

                t = timed(["unzip", "-tq", str(archive)])
                a, poller, body, hwm = api_call(server, "/api/wallets/backup/verify", {"zip_path": str(archive)})
                if not body.get("ok"):
                    print(f"  API PROBLEM: verify not ok: {json.dumps(body.get('problems'))[:500]}", flush=True)
                record(passes["verify"], f"{size} run {run + 1}: unzip -tq", t, "API verify", a, poller, hwm)
            for kind, p in passes.items():
                ref, api = statistics.median(p["ref_s"]), statistics.median(p["api_s"])
                result[kind] = {
                    "ref_s": [round(x, 3) for x in p["ref_s"]],
                    "api_s": [round(x, 3) for x in p["api_s"]],
                    "ref_median_s": round(ref, 3),
                    "api_median_s": round(api, 3),
                    "ratio": round(api / ref, 3),
                    "health": latency_summary(p["latencies"], sum(p["errors"])),
                    "vmhwm_mb": round(max(p["vmhwm_mb"]), 1),
                }
        finally:
            server.stop()
            # Every output is kept until the size is done: removing 100,000 files loads the file
            # system for a minute, which would land on the next timed run.
            print(f"  {size}: removing the outputs (untimed)", flush=True)
    return result


def report(results: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    lines = [
        f"{'size':>7} {'what':<8} {'reference s':>11} {'API s':>7} {'ratio':>6} {'goal (aim)':>11} "
        f"{'health p50/p99/max/n ms':>26} {'VmHWM MB':>9}  ratio  health"
    ]
    lines.append("-" * len(lines[0]))
    goals: dict[str, Any] = {}
    for r in results:
        for kind, (goal, aim) in (("restore", (P8_GOAL, P8_AIM)), ("verify", (P9_GOAL, P9_AIM))):
            p = r[kind]
            h = p["health"]
            hs = f"{h['p50_ms']}/{h['p99_ms']}/{h['max_ms']}/{h['samples']}"
            lines.append(
                f"{r['size']:>7} {kind:<8} {p['ref_median_s']:>11.2f} {p['api_median_s']:>7.2f} {p['ratio']:>6.3f} "
                f"{f'≤{goal:g} ({aim:g})':>11} {hs:>26} {p['vmhwm_mb']:>9.1f}  "
                f"{verdict(p['ratio'] <= goal)}   {verdict(health_ok(h))}"
            )
    lines.append("")
    by_size = {r["size"]: r for r in results}
    row = by_size.get(GOAL_SIZE) or (min(results, key=lambda r: abs(r["size"] - GOAL_SIZE)) if results else None)

    def add(key: str, text: str, ok: bool | None, figures: dict[str, Any]) -> None:
        goals[key] = {"result": verdict(ok), **figures}
        lines.append(f"{key:<4} {text:<110} {verdict(ok)}")

    if row:
        gs = row["size"]
        note = "" if gs == GOAL_SIZE else f" (measured at {gs}: {GOAL_SIZE} not run)"
        p8, p9 = row["restore"], row["verify"]
        add(
            "P8",
            f"API restore / unzip -q at {gs}: {p8['ratio']:.3f} (goal ≤ {P8_GOAL:g}, aim {P8_AIM:g}){note}",
            p8["ratio"] <= P8_GOAL,
            {"size": gs, "ratio": p8["ratio"], "aim_met": p8["ratio"] <= P8_AIM},
        )
        add(
            "P9",
            f"API verify / unzip -tq at {gs}: {p9['ratio']:.3f} (goal ≤ {P9_GOAL:g}, aim {P9_AIM:g}){note}",
            p9["ratio"] <= P9_GOAL,
            {"size": gs, "ratio": p9["ratio"], "aim_met": p9["ratio"] <= P9_AIM},
        )
        for kind in ("restore", "verify"):
            h = row[kind]["health"]
            add(
                f"P3{kind[0]}",
                f"health during {gs} {kind}s: p99 {h['p99_ms']} ms, max {h['max_ms']} ms, "
                f"{h['samples']} samples (goal p99 ≤ {P3_P99_MS:g}, max ≤ {P3_MAX_MS:g})",
                health_ok(h),
                {"size": gs, **h},
            )
    small, big = by_size.get(P4_SIZES[0]), by_size.get(P4_SIZES[1])
    for kind in ("restore", "verify"):
        if small and big:
            s, b = small[kind]["vmhwm_mb"], big[kind]["vmhwm_mb"]
            growth = b / s - 1
            add(
                f"P4{kind[0]}",
                f"{kind} VmHWM {b:.1f} MB at {P4_SIZES[1]} vs {s:.1f} MB at {P4_SIZES[0]}: "
                f"{growth * 100:+.1f}% (goal ≤ {P4_MAX_MB:g} MB and ≤ +{P4_GROWTH * 100:g}%)",
                b <= P4_MAX_MB and growth <= P4_GROWTH,
                {"vmhwm_300k_mb": b, "vmhwm_10k_mb": s, "growth": round(growth, 3)},
            )
        else:
            add(f"P4{kind[0]}", f"{kind}: needs sizes 10000 and 300000", None, {})
    lines.append("")
    lines.append(
        "reference = unzip -q into an empty folder (restore), unzip -tq (verify); health = GET /api/health "
        "every 10 ms during the API calls; VmHWM = the server's peak RSS during one call (reset before each)"
    )
    for r in results:
        lines.append(f"{r['size']:>7}: archive {r['archive_bytes'] / 1e6:.1f} MB, idle RSS {r['rss_idle_mb']} MB")
    return "\n".join(lines), goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,300000", help="comma-separated coin counts")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per size (at least 3)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "out",
        help="wallets go to DIR/wallets, results to DIR/restore-results.json (default bench/out)",
    )
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # the API takes absolute paths only
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes must be comma-separated integers")
    if not sizes or min(sizes) <= 0:
        parser.error("--sizes must be positive")
    if shutil.which("unzip") is None:
        print("unzip not found: install it from the system package manager (apt-get install unzip)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = []
    for size in sizes:
        wallet = build_wallet(size, args.out / "wallets", announce=True)
        print(f"  {size}: the disk settled in {settle_disk():.1f} s (untimed)", flush=True)
        results.append(bench_size(size, wallet, args.runs))
    table, goals = report(results)
    load = os.getloadavg()
    print()
    print(
        f"bench/restore.py --sizes {','.join(map(str, sizes))} --runs {args.runs}  ({os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {time.perf_counter() - started:.0f} s)"
    )
    print(table)
    write_results(
        args.out / "restore-results.json",
        {
            "runs": args.runs,
            "load_average": load,
            "goals": goals,
            "sizes": results,
            "table": table.splitlines(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
