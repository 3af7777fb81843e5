"""P6 and P7 of quality.md: 1,000 jobs at once through the API, the queue's overhead, the job-polling rate.

    python bench/jobs.py [--jobs 1000] [--wallets 20] [--rename-share 0.3] [--connections 50]
                         [--p7-seconds 5] [--p7-coins 100000] [--load-procs 1] [--out DIR]

P6, in process: a JobRunner (jobs/runner.py) over a JobStore in a temporary folder, with a job function
that does nothing (on the loop, and once through the executor); the time of --jobs submits to the
last completion, per job.

P6, over HTTP: starts `python -m app` on a free port with a temporary data directory, writes --wallets
small wallets (20 coins each, bench/make_wallet.py) and one minimal wallet per rename into a temporary
folder and registers them all with one POST /api/wallets/locations. Then it submits --jobs jobs at once
with `Prefer: respond-async` from --connections concurrent keep-alive connections (an aiohttp
ClientSession): backups of the small wallets, each into its own destination folder, and renames, each of a
different wallet, shuffled. It waits until /api/health reports nothing queued or running, then checks
that every id is distinct, listed once by GET /api/jobs?limit=1000 and completed, that each backup folder
holds exactly one archive (its result's zip_path) and that every renamed folder exists under its new name
and no longer under its old. Overhead per job = (wall time − Σ(finished_at − started_at) / workers) / jobs,
with the wall time taken on the client (first submit → nothing left) and on the server (first
created_at → last finished_at).

P7: registers the reference wallet of --p7-coins (bench/out/wallets, built if missing), queues enough
backups of it one after another (one wallet: they run one at a time) to keep a backup running for the
whole window, and hammers GET /api/jobs/{id} of the first (running) one for --p7-seconds: with `wrk`
when installed (wrk -t2 -c50), else with --load-procs separate Python processes running an aiohttp client
with --connections keep-alive connections between them. The same load with no backup running is
measured for comparison. The machine has 2 cores: the load generator competes with the server.

Prints one table with PASS/FAIL per goal and writes bench/out/jobs-results.json (DIR/jobs-results.json).
Not a test: the figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, from any working directory
ROOT = Path(__file__).resolve().parent.parent
# The project's packages (`jobs`, `app`) must win over this script's own name.
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))

import make_wallet  # noqa: E402
from common import (  # noqa: E402
    WALLET_BYTES_PER_COIN,
    Server,
    alternate,
    build_wallet,
    call,
    parse_time,
    register,
    rename_back,
    wallet_name,
    warm_cache,
    write_results,
)

P6_OVERHEAD_MS = 2.0
P7_RPS = 2000.0
SMALL_COINS = 20


# -- P6 in process ------------------------------------------------------------------------------


async def _inprocess(n: int, lanes: int, via_executor: bool) -> dict[str, Any]:
    import concurrent.futures

    from app.wallet.config import Config
    from jobs.models import JobKind
    from jobs.runner import JobRunner
    from jobs.store import JobStore

    defaults = Config()
    with tempfile.TemporaryDirectory(prefix="cc-bench-runner-") as tmp:
        executor = concurrent.futures.ThreadPoolExecutor(defaults.threads, thread_name_prefix="bench")
        store = JobStore(Path(tmp) / "jobs")
        runner = JobRunner(store, executor=executor, workers=defaults.workers, max_queued=max(n, defaults.max_queued))

        def nothing() -> None:
            return None

        async def noop(ctx: Any) -> dict[str, Any]:
            if via_executor:
                await ctx.run_blocking(nothing)
            return {"success": True}

        runner.register(JobKind.BACKUP, noop)
        await runner.start()
        try:
            started = time.perf_counter()
            # At once, as P6 says: each submit returns once its job is committed, and the commits of
            # jobs submitted together coalesce (one after another, each would wait for its own fsync).
            submitted = await asyncio.gather(
                *(
                    runner.submit(JobKind.BACKUP, wallet_path=f"/bench/wallet-{i % lanes}", params={"i": i})
                    for i in range(n)
                )
            )
            submit_s = time.perf_counter() - started
            for job in submitted:
                await runner.wait(job.id, None)
            done_s = time.perf_counter() - started
            await store.flush()
            flushed_s = time.perf_counter() - started
            statuses = {str(job.status) for job in submitted}
            distinct = len({job.id for job in submitted})
        finally:
            await runner.close()
            executor.shutdown(wait=True)
    return {
        "jobs": n,
        "lanes": lanes,
        "via_executor": via_executor,
        "workers": defaults.workers,
        "submit_ms": round(submit_s * 1000, 1),
        "done_ms": round(done_s * 1000, 1),
        "flushed_ms": round(flushed_s * 1000, 1),
        "per_job_ms": round(done_s * 1000 / n, 4),
        "per_job_flushed_ms": round(flushed_s * 1000 / n, 4),
        "statuses": sorted(statuses),
        "distinct_ids": distinct,
    }


def p6_inprocess(n: int, lanes: int) -> list[dict[str, Any]]:
    results = []
    for via_executor in (False, True):
        r = asyncio.run(_inprocess(n, lanes, via_executor))
        results.append(r)
        print(
            f"  in process, {n} no-op jobs on {lanes} wallets{' via the executor' if via_executor else ''}: "
            f"submitted in {r['submit_ms']} ms, all completed after {r['done_ms']} ms "
            f"({r['per_job_ms']} ms/job), store flushed after {r['flushed_ms']} ms; statuses {r['statuses']}",
            flush=True,
        )
    return results


# -- P6 over HTTP -------------------------------------------------------------------------------


def make_minimal_wallet(path: Path) -> None:
    path.mkdir()
    for sub in make_wallet.SUBFOLDERS:
        (path / sub).mkdir()
    (path / "transactions.csv").write_text(make_wallet.CSV_HEADER, encoding="utf-8")


async def _submit_all(
    port: int, requests: list[dict[str, Any]], connections: int
) -> tuple[list[dict[str, Any]], float, float]:
    import aiohttp

    base = f"http://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Open the connections before the clock starts: the figure is the queue's, not TCP's.
        async def ping() -> None:
            async with session.get(f"{base}/api/health") as response:
                await response.read()

        await asyncio.gather(*(ping() for _ in range(connections)))

        async def submit(req: dict[str, Any]) -> dict[str, Any]:
            async with session.post(
                f"{base}{req['path']}", params=req["params"], headers={"Prefer": "respond-async"}
            ) as response:
                body = await response.json(content_type=None)
                return {
                    "status": response.status,
                    "body": body,
                    "location": response.headers.get("Location"),
                    "applied": response.headers.get("Preference-Applied"),
                }

        started_wall = time.time()
        started = time.perf_counter()
        answers = await asyncio.gather(*(submit(req) for req in requests))
        submitted = time.perf_counter() - started
    return answers, started_wall, submitted


def wait_idle(server: Any, since: float, timeout: float = 600) -> float:
    """Poll /api/health every 20 ms until nothing is queued or running; the perf_counter time it saw that."""
    conn = server.connect(timeout=30)
    deadline = time.perf_counter() + timeout
    try:
        while time.perf_counter() < deadline:
            _, body = call(conn, "GET", "/api/health")
            counts = body.get("jobs", {})
            if counts.get("queued") == 0 and counts.get("running") == 0:
                return time.perf_counter()
            time.sleep(0.02)
    finally:
        conn.close()
    raise SystemExit(f"jobs still queued or running after {timeout} s")


def p6_http(
    server: Any, work: Path, n_jobs: int, n_wallets: int, rename_share: float, connections: int, workers: int
) -> dict[str, Any]:
    wallets_dir = work / "wallets"
    dest_root = work / "destinations"
    wallets_dir.mkdir()
    dest_root.mkdir()
    n_renames = round(n_jobs * rename_share)
    n_backups = n_jobs - n_renames
    started = time.perf_counter()
    small = [make_wallet.make_wallet(SMALL_COINS, wallets_dir, f"Small_{i:02d}") for i in range(n_wallets)]
    movable = []
    for i in range(n_renames):
        path = wallets_dir / f"Move_{i:04d}"
        make_minimal_wallet(path)
        movable.append(path)
    conn = server.connect()
    body = register(conn, wallets_dir)
    conn.close()
    if len(body.get("wallets_added", [])) != n_wallets + n_renames:
        raise SystemExit(f"registering {wallets_dir} failed: {json.dumps(body)[:500]}")
    print(
        f"  {n_wallets} wallets of {SMALL_COINS} coins and {n_renames} to rename written and registered "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    requests: list[dict[str, Any]] = []
    for i in range(n_backups):
        wallet = small[i % n_wallets]
        destination = dest_root / f"b{i:04d}"
        requests.append(
            {
                "kind": "wallet-backup",
                "path": "/api/wallets/backup",
                "destination": destination,
                "params": {"wallet_path": str(wallet), "destination": str(destination)},
            }
        )
    for path in movable:
        requests.append(
            {
                "kind": "wallet-rename",
                "path": "/api/wallets/rename",
                "old": path,
                "new": path.with_name(path.name + "-renamed"),
                "params": {"wallet_path": str(path), "new_name": path.name + "-renamed"},
            }
        )
    random.Random(6).shuffle(requests)

    answers, started_wall, submit_s = asyncio.run(_submit_all(server.port, requests, connections))
    t0 = time.perf_counter() - submit_s
    t_idle = wait_idle(server, t0)
    wall_s = t_idle - t0
    print(
        f"  {n_jobs} jobs ({n_backups} backups of {n_wallets} wallets, {n_renames} renames) submitted in "
        f"{submit_s:.2f} s from {connections} connections; nothing queued or running after {wall_s:.2f} s",
        flush=True,
    )

    problems: list[str] = []
    statuses: dict[int, int] = {}
    ids: list[str] = []
    for req, answer in zip(requests, answers):
        statuses[answer["status"]] = statuses.get(answer["status"], 0) + 1
        job_id = answer["body"].get("job_id") if isinstance(answer["body"], dict) else None
        req["job_id"] = job_id
        if answer["status"] != 202 or not job_id:
            problems.append(f"{req['kind']} answered HTTP {answer['status']} {json.dumps(answer['body'])[:200]}")
            continue
        if answer["location"] != f"/api/jobs/{job_id}":
            problems.append(f"Location {answer['location']} for job {job_id}")
        ids.append(job_id)
    distinct = len(set(ids))

    conn = server.connect()
    status, listing = call(conn, "GET", "/api/jobs", {"limit": "1000"})
    _, wallet_list = call(conn, "GET", "/api/wallets/list")
    conn.close()
    listed = listing.get("jobs", []) if status == 200 else []
    listed_ids = [job["id"] for job in listed]
    by_id = {job["id"]: job for job in listed}
    if status != 200:
        problems.append(f"GET /api/jobs answered HTTP {status}")
    if listing.get("count") != len(listed):
        problems.append(f"list count {listing.get('count')} != {len(listed)} jobs in it")
    if len(set(listed_ids)) != len(listed_ids):
        problems.append(f"the list holds {len(listed_ids) - len(set(listed_ids))} duplicated ids")
    lost = set(ids) - set(listed_ids)
    extra = set(listed_ids) - set(ids)
    if lost:
        problems.append(f"{len(lost)} submitted jobs missing from the list")
    if extra:
        problems.append(f"{len(extra)} listed jobs never submitted")
    final: dict[str, int] = {}
    for job in listed:
        final[job["status"]] = final.get(job["status"], 0) + 1

    run_s = 0.0
    created, finished = [], []
    for job in listed:
        start, end = parse_time(job.get("started_at")), parse_time(job.get("finished_at"))
        if start is not None and end is not None:
            run_s += end - start
        created.append(parse_time(job["created_at"]))
        if end is not None:
            finished.append(end)
    span_s = (max(finished) - min(created)) if finished and created else float("nan")

    # On disk: one archive per backup, every rename done.
    zips_ok = renames_ok = 0
    for req in requests:
        job = by_id.get(req.get("job_id") or "")
        if req["kind"] == "wallet-backup":
            files = sorted(os.listdir(req["destination"])) if req["destination"].is_dir() else []
            archives = [f for f in files if f.endswith(".zip")]
            expected = (job or {}).get("result") or {}
            if (
                len(files) == 1
                and len(archives) == 1
                and str(req["destination"] / archives[0]) == expected.get("zip_path")
            ):
                zips_ok += 1
            elif len(problems) < 40:
                problems.append(
                    f"backup {req.get('job_id')}: destination holds {files}, result zip_path "
                    f"{expected.get('zip_path')}, status {(job or {}).get('status')} "
                    f"{json.dumps((job or {}).get('error'))[:200]}"
                )
        else:
            if req["new"].is_dir() and not req["old"].exists():
                renames_ok += 1
            elif len(problems) < 40:
                problems.append(
                    f"rename {req.get('job_id')}: {req['old'].name} -> {req['new'].name} not on disk, "
                    f"status {(job or {}).get('status')} {json.dumps((job or {}).get('error'))[:200]}"
                )
    registered = {Path(w["wallet_path"]).name for w in wallet_list.get("wallets", [])}
    not_registered = [
        r["new"].name for r in requests if r["kind"] == "wallet-rename" and r["new"].name not in registered
    ]
    if not_registered:
        problems.append(f"{len(not_registered)} renamed wallets not in /api/wallets/list under their new name")

    overhead_client = (wall_s - run_s / workers) / n_jobs * 1000
    overhead_server = (span_s - run_s / workers) / n_jobs * 1000
    ok = (
        not problems
        and distinct == n_jobs
        and len(listed) == n_jobs
        and final.get("completed") == n_jobs
        and zips_ok == n_backups
        and renames_ok == n_renames
    )
    backup_runs = [
        parse_time(j["finished_at"]) - parse_time(j["started_at"])
        for j in listed
        if j["kind"] == "wallet-backup" and j.get("started_at") and j.get("finished_at")
    ]
    rename_runs = [
        parse_time(j["finished_at"]) - parse_time(j["started_at"])
        for j in listed
        if j["kind"] == "wallet-rename" and j.get("started_at") and j.get("finished_at")
    ]
    result = {
        "jobs": n_jobs,
        "backups": n_backups,
        "renames": n_renames,
        "wallets": n_wallets,
        "connections": connections,
        "workers": workers,
        "http_statuses": {str(k): v for k, v in statuses.items()},
        "distinct_ids": distinct,
        "listed": len(listed),
        "final_statuses": final,
        "archives_ok": zips_ok,
        "renames_ok": renames_ok,
        "submit_s": round(submit_s, 3),
        "wall_s": round(wall_s, 3),
        "server_span_s": round(span_s, 3),
        "sum_run_s": round(run_s, 3),
        "backup_run_median_ms": round(statistics.median(backup_runs) * 1000, 1) if backup_runs else None,
        "rename_run_median_ms": round(statistics.median(rename_runs) * 1000, 1) if rename_runs else None,
        "overhead_ms_per_job_client": round(overhead_client, 3),
        "overhead_ms_per_job_server": round(overhead_server, 3),
        "all_ok": ok,
        "problems": problems,
    }
    for problem in problems[:40]:
        print(f"  API PROBLEM: {problem}", flush=True)
    return result


# -- P7 -----------------------------------------------------------------------------------------


def _load_child(url: str, connections: int, seconds: float, warmup: float, out: Any) -> None:
    """One load-generator process: `connections` keep-alive aiohttp connections hammering `url`."""
    import aiohttp

    async def run() -> dict[str, Any]:
        counts = {"ok": 0, "other": 0, "errors": 0}
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            begin = time.perf_counter() + warmup
            end = begin + seconds

            async def worker() -> None:
                while True:
                    now = time.perf_counter()
                    if now >= end:
                        return
                    try:
                        async with session.get(url) as response:
                            await response.read()
                            ok = response.status == 200
                    except aiohttp.ClientError:
                        ok = None
                    done = time.perf_counter()
                    if begin <= done < end:
                        key = "ok" if ok else ("errors" if ok is None else "other")
                        counts[key] += 1

            await asyncio.gather(*(worker() for _ in range(connections)))
        counts["window_start"] = time.time() - (time.perf_counter() - begin)
        return counts

    out.put(asyncio.run(run()))


def generate_load(url: str, seconds: float, connections: int, procs: int) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk:
        start = time.time()
        out = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{int(round(seconds))}s", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        match = re.search(r"Requests/sec:\s*([\d.]+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
        return {
            "generator": f"wrk -t2 -c{connections} -d{int(round(seconds))}s",
            "rps": float(match.group(1)) if match else 0.0,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "window": (start, start + seconds),
        }
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    warmup = 1.0  # the children import aiohttp and open their connections first
    per_child = [connections // procs + (1 if k < connections % procs else 0) for k in range(procs)]
    children = [
        context.Process(target=_load_child, args=(url, c, seconds, warmup, queue), daemon=True) for c in per_child
    ]
    for child in children:
        child.start()
    try:
        results = [queue.get(timeout=seconds + 60) for _ in children]
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()
    ok = sum(r["ok"] for r in results)
    start = min(r["window_start"] for r in results)
    return {
        "generator": f"{procs} Python process(es), aiohttp client, {connections} keep-alive connections",
        "rps": ok / seconds,
        "ok": ok,
        "non_200": sum(r["other"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "window": (start, start + seconds),
    }


def p7(server: Any, work: Path, coins: int, seconds: float, connections: int, procs: int, dest: Path) -> dict[str, Any]:
    rename_back(alternate(dest / wallet_name(coins)), dest / wallet_name(coins))
    if not (dest / wallet_name(coins)).is_dir():
        need = coins * WALLET_BYTES_PER_COIN
        dest.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(dest).free
        if free < need + (512 << 20):
            print(
                f"  not enough free disk for the {coins}-coin wallet (≈ {need / 1e9:.2f} GB, free {free / 1e9:.2f} GB)"
            )
            return {"error": "not enough disk"}
    wallet = build_wallet(coins, dest, announce=True)
    conn = server.connect()
    register(conn, wallet)
    warm_cache(wallet)
    dest_root = work / "p7"
    dest_root.mkdir()
    # One synchronous backup tells how long one takes.
    status, body = call(
        conn, "POST", "/api/wallets/backup", {"wallet_path": str(wallet), "destination": str(dest_root / "calibrate")}
    )
    if status != 200:
        raise SystemExit(f"backup of {wallet} failed: HTTP {status} {json.dumps(body)[:500]}")
    one_s = body.get("duration_ms", 1000) / 1000
    shutil.rmtree(dest_root / "calibrate")
    chain = math.ceil((seconds + 3.0) / one_s) + 1  # covers the children's start-up and the window
    ids = []
    for k in range(chain):
        conn.request(
            "POST",
            "/api/wallets/backup?"
            + urlencode({"wallet_path": str(wallet), "destination": str(dest_root / f"chain{k:02d}")}),
            headers={"Prefer": "respond-async"},
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 202:
            raise SystemExit(f"async backup refused: HTTP {response.status} {answer}")
        ids.append(answer["job_id"])
    target = f"http://127.0.0.1:{server.port}/api/jobs/{ids[0]}"
    print(
        f"  P7: one {coins}-coin backup takes {one_s:.2f} s; {chain} queued one after another; "
        f"hammering {target} for {seconds:g} s",
        flush=True,
    )
    busy = generate_load(target, seconds, connections, procs)
    # A connection idle through the load may have been closed by the server (its keep-alive timer, or
    # the connection cap making room for the load's connections): a new one.
    conn.close()
    conn = server.connect()
    _, first_after = call(conn, "GET", f"/api/jobs/{ids[0]}")
    # How much of the window a backup of the chain was running (from the jobs' own times).
    wait_idle(server, time.perf_counter(), timeout=chain * one_s * 3 + 60)
    status, listing = call(
        conn, "GET", "/api/jobs", {"kind": "wallet-backup", "wallet_path": str(wallet), "limit": "1000"}
    )
    intervals = sorted(
        (parse_time(j["started_at"]), parse_time(j["finished_at"]))
        for j in listing.get("jobs", [])
        if j["id"] in ids and j.get("started_at") and j.get("finished_at")
    )
    w0, w1 = busy["window"]
    covered = 0.0
    for a, b in intervals:
        covered += max(0.0, min(b, w1) - max(a, w0))
    failed = [j["id"] for j in listing.get("jobs", []) if j["id"] in ids and j["status"] != "completed"]
    shutil.rmtree(dest_root)
    idle = generate_load(target, min(seconds, 3.0), connections, procs)
    conn.close()
    busy.pop("window")
    idle.pop("window")
    out = {
        "coins": coins,
        "backup_s": round(one_s, 3),
        "chain": chain,
        "target_status_after": first_after.get("status"),
        "backup_running_share": round(covered / (w1 - w0), 3),
        "chain_failed": failed,
        "during_backup": {k: (round(v, 1) if isinstance(v, float) else v) for k, v in busy.items()},
        "idle": {k: (round(v, 1) if isinstance(v, float) else v) for k, v in idle.items()},
    }
    print(
        f"  P7: {busy['rps']:.0f} requests/s while backups ran ({out['backup_running_share'] * 100:.0f}% of the window), "
        f"{idle['rps']:.0f} requests/s idle; generator: {busy['generator']}",
        flush=True,
    )
    if failed:
        print(f"  API PROBLEM: {len(failed)} chained backups did not complete", flush=True)
    return out


# -- the report ---------------------------------------------------------------------------------


def report(inproc: list[dict[str, Any]], http: dict[str, Any], load: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    lines: list[str] = []
    goals: dict[str, Any] = {}

    def row(key: str, text: str, ok: bool | None) -> None:
        if not key:  # a detail line under the goal above
            lines.append(f"{'':<4} {text}")
            return
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        goals.setdefault(key, []).append(verdict)
        lines.append(f"{key:<4} {text:<100} {verdict}")

    h = http
    row(
        "P6",
        f"{h['jobs']} jobs via HTTP ({h['backups']} backups, {h['renames']} renames): {h['distinct_ids']} distinct ids, "
        f"{h['listed']} listed, {h['final_statuses']}",
        h["all_ok"],
    )
    row(
        "",
        f"  archives ok {h['archives_ok']}/{h['backups']}, renames ok {h['renames_ok']}/{h['renames']}, "
        f"HTTP {h['http_statuses']}",
        None,
    )
    row(
        "",
        f"  submit {h['submit_s']:.2f} s, wall {h['wall_s']:.2f} s (server span {h['server_span_s']:.2f} s), "
        f"Σ run {h['sum_run_s']:.2f} s / {h['workers']} workers",
        None,
    )
    row("", f"  median run: backup {h['backup_run_median_ms']} ms, rename {h['rename_run_median_ms']} ms", None)
    ok_overhead = h["overhead_ms_per_job_client"] <= P6_OVERHEAD_MS
    row(
        "P6",
        f"queue overhead per job over HTTP: {h['overhead_ms_per_job_client']:.3f} ms (client wall), "
        f"{h['overhead_ms_per_job_server']:.3f} ms (server span) (goal ≤ {P6_OVERHEAD_MS:g} ms)",
        ok_overhead,
    )
    for r in inproc:
        row(
            "P6",
            f"in process, {r['jobs']} no-op jobs{' via executor' if r['via_executor'] else ''}: "
            f"{r['per_job_ms']:.4f} ms/job to completion, {r['per_job_flushed_ms']:.4f} ms/job to store flushed",
            r["per_job_ms"] <= P6_OVERHEAD_MS and r["statuses"] == ["completed"] and r["distinct_ids"] == r["jobs"],
        )
    if "error" in load:
        row("P7", f"not run: {load['error']}", None)
    else:
        d = load["during_backup"]
        row(
            "P7",
            f"GET /api/jobs/{{id}} during {load['coins']}-coin backups: {d['rps']:.0f} req/s "
            f"(backup running {load['backup_running_share'] * 100:.0f}% of the window; idle {load['idle']['rps']:.0f} req/s) "
            f"(goal ≥ {P7_RPS:g})",
            d["rps"] >= P7_RPS and not d.get("non_200") and not d.get("errors") and not d.get("non_2xx"),
        )
        row("", f"  generator: {d['generator']}", None)
    return "\n".join(lines), goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs", type=int, default=1000, help="jobs submitted at once (P6; at most 1000: the list limit)"
    )
    parser.add_argument("--wallets", type=int, default=20, help="small wallets the backups spread over")
    parser.add_argument("--rename-share", type=float, default=0.3, help="share of the jobs that are renames")
    parser.add_argument("--connections", type=int, default=50, help="concurrent keep-alive connections")
    parser.add_argument("--p7-seconds", type=float, default=5.0, help="load window of P7")
    parser.add_argument("--p7-coins", type=int, default=100_000, help="coins in the wallet backed up during P7")
    parser.add_argument("--load-procs", type=int, default=1, help="Python load-generator processes (without wrk)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "out",
        help="the P7 wallet lives in DIR/wallets, results go to DIR/jobs-results.json",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= 1000:
        parser.error("--jobs must be between 1 and 1000")
    if args.wallets < 1 or not 0 <= args.rename_share <= 1:
        parser.error("--wallets must be ≥ 1 and --rename-share between 0 and 1")

    from app.wallet.config import Config

    workers = Config().workers
    started = time.perf_counter()
    print("P6 in process:", flush=True)
    inproc = p6_inprocess(args.jobs, args.wallets)
    with tempfile.TemporaryDirectory(prefix="cc-bench-jobs-") as tmp:
        work = Path(tmp)
        server = Server(work / "Client_Data")
        try:
            print(f"server pid {server.pid} on port {server.port}", flush=True)
            print("P6 over HTTP:", flush=True)
            http = p6_http(server, work, args.jobs, args.wallets, args.rename_share, args.connections, workers)
            print("P7:", flush=True)
            load = p7(
                server, work, args.p7_coins, args.p7_seconds, args.connections, args.load_procs, args.out / "wallets"
            )
        finally:
            server.stop()
    table, goals = report(inproc, http, load)
    print()
    print(
        f"bench/jobs.py --jobs {args.jobs} --wallets {args.wallets} --rename-share {args.rename_share} "
        f"--connections {args.connections}  ({os.cpu_count()} CPUs, {workers} workers, "
        f"{time.perf_counter() - started:.0f} s)"
    )
    print(table)
    write_results(
        args.out / "jobs-results.json",
        {
            "goals": goals,
            "p6_inprocess": inproc,
            "p6_http": http,
            "p7": load,
            "table": table.splitlines(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
