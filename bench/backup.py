"""P1-P5 of quality.md: the API backup against bsdtar, Info-ZIP and 7-Zip in the same run, health, peak RSS, renames.

    python bench/backup.py [--sizes 10000,100000,300000] [--runs 3] [--encrypt|--no-encrypt] [--out DIR]

For each size it builds (or reuses) the reference wallet with bench/make_wallet.py under DIR/wallets,
waits (untimed) until the disk has been idle for 3 s (a big removal before, such as bench/restore.py's
outputs, keeps the file system busy after it returns), starts a fresh `python -m app` on a free port with a temporary data directory (fresh per size, so the
peak RSS belongs to that size), registers the wallet through POST /api/wallets/locations, reads every
file once (untimed: the page cache is warm), and then, --runs times, alternately times each reference
archiver that is installed (`bsdtar --format zip --options zip:compression=store`, `zip -r -q -0`,
`7zz a -tzip -mx0`, `zip -r -q`) and the synchronous POST /api/wallets/backup into a temporary folder
outside Client_Data, deleting every output after its run. P1 and P2 are the API's median against
bsdtar's (the fastest peer); P1 also against `zip -r -q`. While each API backup runs, a thread polls
GET /api/health every 10 ms on its own keep-alive connection.

Unless --no-encrypt is given, a second pass follows on the same server after POST /api/system/login,
so every coin is re-encrypted on its way into the archive (P2); the peak-RSS mark is reset before it
(/proc/<pid>/clear_refs), so each pass reports its own VmHWM.

At the size nearest 100,000 it also times (P3) renames of a second, small wallet (made with
POST /api/wallets/create) while one extra, untimed backup runs, and (P5) renames of the big wallet
itself, back and forth. It prints one table with PASS/FAIL per goal and writes the same figures as
JSON to DIR/backup-results.json. Not a test: the figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, from any working directory
from common import (  # noqa: E402
    P3_AIM_P99_MS,
    P3_MAX_MS,
    P3_P99_MS,
    ROOT,
    WALLET_BYTES_PER_COIN,
    HealthPoller,
    Server,
    alternate,
    build_wallet,
    call,
    health_ok,
    idle_health,
    latency_summary,
    register,
    rename_back,
    settle_disk,
    verdict,
    wallet_name,
    warm_cache,
    write_results,
)
from make_wallet import count_coins  # noqa: E402

ZIP_MISSING = "zip not found: install it from the system package manager (apt-get install zip)"

# quality.md: ratios against bsdtar store (P1 also ≤ 0.30 × zip -r -q)
P1_GOAL, P1_AIM, P1_ZIP_GOAL = 0.90, 0.65, 0.30
P2_GOAL, P2_AIM = 1.10, 0.80
P3_RENAME_MS = 100.0
P4_MAX_MB, P4_GROWTH = 120.0, 0.15
P5_MS = 50.0
GOAL_SIZE = 100_000  # P1, P2, P3 and P5 are stated for a 100,000-coin wallet
P4_SIZES = (10_000, 300_000)

ARCHIVE_BYTES_PER_COIN = 700  # a stored coin plus its local and central headers, with margin


# -- the wallets --------------------------------------------------------------------------------


def plan_disk(sizes: list[int], dest: Path) -> list[int]:
    """The sizes that fit on the disk (wallets still to build plus the largest pair of archives)."""
    dest.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest).free
    tmp_free = shutil.disk_usage(tempfile.gettempdir()).free
    fitting: list[int] = []
    need = 0
    for size in sorted(sizes):
        wallet = dest / wallet_name(size)
        build = 0 if (wallet.is_dir() and count_coins(wallet) == size) else size * WALLET_BYTES_PER_COIN + (2 << 20)
        archives = 2 * size * ARCHIVE_BYTES_PER_COIN
        if need + build + (256 << 20) > free or archives + (256 << 20) > tmp_free:
            print(
                f"not enough free disk for {size} coins: needs ≈ {(build + archives) / 1e9:.2f} GB "
                f"(wallet {build / 1e9:.2f} GB in {dest}, archives {archives / 1e9:.2f} GB in "
                f"{tempfile.gettempdir()}); free {free / 1e9:.2f} GB / {tmp_free / 1e9:.2f} GB: skipped",
                flush=True,
            )
            continue
        need += build
        fitting.append(size)
    print(f"disk: {free / 1e9:.1f} GB free under {dest}, ≈ {need / 1e9:.2f} GB needed for new wallets", flush=True)
    return [s for s in sizes if s in fitting]


# -- one run of each ----------------------------------------------------------------------------

#: the reference archivers, each timed where installed: (label, program, arguments with OUT and NAME)
REFERENCES = (
    ("bsdtar store", "bsdtar", ["-c", "-f", "OUT", "--format", "zip", "--options", "zip:compression=store", "NAME"]),
    ("zip -0", "zip", ["-r", "-q", "-0", "OUT", "NAME"]),
    ("7zz -mx0", "7zz", ["a", "-tzip", "-mx0", "-bso0", "-bsp0", "OUT", "NAME"]),
    ("zip -r -q", "zip", ["-r", "-q", "OUT", "NAME"]),
)
PRIMARY = "bsdtar store"  # the fastest peer: P1 and P2 are ratios against it
SECONDARY = "zip -r -q"  # P1's second bar


def available_references() -> list[tuple[str, str, list[str]]]:
    return [(label, program, args) for label, program, args in REFERENCES if shutil.which(program)]


def time_reference(reference: tuple[str, str, list[str]], wallet: Path, work: Path) -> float:
    _, program, args = reference
    target = work / "reference.zip"
    command = [program] + [str(target) if a == "OUT" else wallet.name if a == "NAME" else a for a in args]
    started = time.perf_counter()
    subprocess.run(command, cwd=wallet.parent, check=True)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def time_api_backup(
    server: Server, wallet: str, work: Path, size: int, encrypted: bool, during: Any = None
) -> tuple[float, HealthPoller, dict[str, Any]]:
    destination = work / "api-backup"
    conn = server.connect()
    try:
        with HealthPoller(server.port) as poller:
            time.sleep(0.05)  # the poller runs before the backup starts
            if during is not None:
                during.start()
            started = time.perf_counter()
            status, body = call(
                conn, "POST", "/api/wallets/backup", {"wallet_path": wallet, "destination": str(destination)}
            )
            elapsed = time.perf_counter() - started
    finally:
        conn.close()
        if during is not None and during.is_alive():
            during.join()
    if status != 200 or not body.get("success"):
        raise SystemExit(f"backup failed: HTTP {status} {json.dumps(body)[:1000]}\n{server.log_tail()}")
    problems = []
    if body.get("files_added") != size:
        problems.append(f"files_added {body.get('files_added')} != {size}")
    if encrypted and body.get("files_reencrypted_for_backup") != size:
        problems.append(f"files_reencrypted_for_backup {body.get('files_reencrypted_for_backup')} != {size}")
    if not encrypted and body.get("files_reencrypted_for_backup"):
        problems.append(f"files_reencrypted_for_backup {body.get('files_reencrypted_for_backup')} without a key")
    zip_path = Path(body.get("zip_path", ""))
    if not zip_path.is_file():
        problems.append(f"zip_path {zip_path} does not exist")
    for problem in problems:
        print(f"  API PROBLEM: {problem}", flush=True)
    body["_problems"] = problems
    shutil.rmtree(destination)
    return elapsed, poller, body


def run_pass(server: Server, wallet: Path, work: Path, size: int, runs: int, encrypted: bool) -> dict[str, Any]:
    """--runs rounds, each timing every reference tool and then the API backup: alternated in one run."""
    label = "encrypted" if encrypted else "plain"
    references = available_references()
    refs: dict[str, list[float]] = {ref[0]: [] for ref in references}
    apis: list[float] = []
    server_ms: list[float] = []
    latencies: list[float] = []
    errors = 0
    problems: list[str] = []
    for run in range(runs):
        for reference in references:
            refs[reference[0]].append(time_reference(reference, wallet, work))
        a, poller, body = time_api_backup(server, str(wallet), work, size, encrypted)
        apis.append(a)
        server_ms.append(body.get("duration_ms") or 0)
        latencies.extend(poller.latencies)
        errors += poller.errors
        problems.extend(body["_problems"])
        health = latency_summary(poller.latencies, poller.errors)
        tools = ", ".join(f"{name} {times[-1]:.2f} s" for name, times in refs.items())
        print(
            f"  {size} {label} run {run + 1}: {tools}, API backup {a:.2f} s "
            f"(server duration_ms {body.get('duration_ms')}, entries {body.get('entries')}, "
            f"zip_size {body.get('zip_size')}); health p50 {health['p50_ms']} p99 {health['p99_ms']} "
            f"max {health['max_ms']} ms, {health['samples']} samples",
            flush=True,
        )
    api_median = statistics.median(apis)
    medians = {name: statistics.median(times) for name, times in refs.items()}
    return {
        "pass": label,
        "reference_s": {name: [round(t, 3) for t in times] for name, times in refs.items()},
        "reference_median_s": {name: round(m, 3) for name, m in medians.items()},
        "ratios": {name: round(api_median / m, 3) for name, m in medians.items()},
        "api_s": [round(t, 3) for t in apis],
        "server_duration_ms": server_ms,
        "api_median_s": round(api_median, 3),
        "ratio": round(api_median / medians[PRIMARY], 3) if PRIMARY in medians else None,
        "zip_ratio": round(api_median / medians[SECONDARY], 3) if SECONDARY in medians else None,
        "health": latency_summary(latencies, errors),
        "problems": problems,
    }


# -- P3 and P5: renames -------------------------------------------------------------------------


def rename(conn: http.client.HTTPConnection, wallet_path: str, new_name: str) -> tuple[float, int, dict[str, Any]]:
    started = time.perf_counter()
    status, body = call(conn, "POST", "/api/wallets/rename", {"wallet_path": wallet_path, "new_name": new_name})
    return (time.perf_counter() - started) * 1000, status, body


class Renamer(threading.Thread):
    """Renames a small wallet back and forth while a backup runs; each rename timed (ms)."""

    def __init__(self, server: Server, path: str, count: int = 6, delay: float = 0.3, gap: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.server, self.path, self.count, self.delay, self.gap = server, path, count, delay, gap
        self.times: list[float] = []
        self.failures: list[str] = []
        self.backup_done = threading.Event()
        self.overlapped = 0  # renames that finished while the backup was still running

    def run(self) -> None:
        conn = self.server.connect(timeout=60)
        path = Path(self.path)
        names = [path.name, f"{path.name}-renamed"]
        time.sleep(self.delay)
        current = path
        for k in range(self.count):
            target = names[(k + 1) % 2]
            elapsed, status, body = rename(conn, str(current), target)
            if status != 200 or not body.get("success"):
                self.failures.append(f"HTTP {status} {json.dumps(body)[:300]}")
                break
            if not self.backup_done.is_set():
                self.overlapped += 1
            self.times.append(elapsed)
            current = Path(body.get("new_path") or current.with_name(target))
            time.sleep(self.gap)
        conn.close()


def p3_rename_during_backup(server: Server, wallet: Path, work: Path, size: int) -> dict[str, Any]:
    conn = server.connect()
    status, body = call(conn, "POST", "/api/wallets/create", {"wallet_path": "RenameProbe"})
    conn.close()
    if status != 200 or not body.get("success"):
        print(f"  API PROBLEM: /api/wallets/create RenameProbe: HTTP {status} {body}", flush=True)
        return {"error": f"create failed: HTTP {status} {body}"}
    renamer = Renamer(server, body["wallet_path"])
    elapsed, poller, result = time_api_backup(server, str(wallet), work, size, False, during=_Starter(renamer))
    renamer.backup_done.set()
    renamer.join()
    for failure in renamer.failures:
        print(f"  API PROBLEM: rename during backup: {failure}", flush=True)
    out = {
        "backup_s": round(elapsed, 3),
        "renames_ms": [round(t, 1) for t in renamer.times],
        "renames_during_backup": renamer.overlapped,
        "rename_median_ms": round(statistics.median(renamer.times), 1) if renamer.times else None,
        "rename_max_ms": round(max(renamer.times), 1) if renamer.times else None,
        "health": latency_summary(poller.latencies, poller.errors),
        "failures": renamer.failures,
    }
    print(
        f"  P3 rename of a small wallet during a {size} backup ({elapsed:.2f} s): "
        f"{out['renames_ms']} ms, {renamer.overlapped} of {len(renamer.times)} finished while the backup ran",
        flush=True,
    )
    return out


class _Starter:
    """Starts the renamer when the backup request is about to be sent (time_api_backup's `during`)."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread

    def start(self) -> None:
        self.thread.start()

    def is_alive(self) -> bool:
        return False  # joined by the caller after it marked the backup done

    def join(self) -> None:
        pass


def p5_rename_big(server: Server, wallet: Path, renames: int = 10) -> dict[str, Any]:
    """Rename the big wallet back and forth (an even number: it ends under its own name)."""
    conn = server.connect(timeout=60)
    names = [wallet.name, alternate(wallet).name]
    current = wallet
    times: list[float] = []
    failures: list[str] = []
    try:
        for k in range(renames):
            target = names[(k + 1) % 2]
            elapsed, status, body = rename(conn, str(current), target)
            if status != 200 or not body.get("success"):
                failures.append(f"HTTP {status} {json.dumps(body)[:300]}")
                print(f"  API PROBLEM: rename {current} -> {target}: HTTP {status} {body}", flush=True)
                break
            times.append(elapsed)
            current = current.with_name(target)
            if not current.is_dir():
                failures.append(f"renamed folder missing: {current}")
                break
    finally:
        conn.close()
        if rename_back(current, wallet):
            # Leave the shared wallet under its own name even after a failure (outside the server).
            failures.append("the wallet was renamed back on disk by the script (not by the API)")
    out = {
        "renames_ms": [round(t, 1) for t in times],
        "median_ms": round(statistics.median(times), 1) if times else None,
        "max_ms": round(max(times), 1) if times else None,
        "failures": failures,
    }
    print(f"  P5 renames of the {wallet.name} wallet: {out['renames_ms']} ms", flush=True)
    return out


# -- one size -----------------------------------------------------------------------------------


def login(server: Server) -> dict[str, Any]:
    conn = server.connect()
    started = time.perf_counter()
    status, body = call(conn, "POST", "/api/system/login", body={"password": "bench-password-P2"})
    elapsed = time.perf_counter() - started
    conn.close()
    if status != 200 or not body.get("key_set"):
        raise SystemExit(f"login failed: HTTP {status} {body}\n{server.log_tail()}")
    print(f"  login: key_check {body.get('key_check')} in {elapsed:.2f} s", flush=True)
    return {"login_s": round(elapsed, 3), "key_check": body.get("key_check")}


def bench_size(size: int, wallet: Path, runs: int, encrypt: bool, extras_size: int | None) -> dict[str, Any]:
    result: dict[str, Any] = {"size": size, "wallet": str(wallet)}
    with tempfile.TemporaryDirectory(prefix=f"cc-bench-backup-{size}-") as tmp:
        work = Path(tmp)
        server = Server(work / "Client_Data")
        try:
            conn = server.connect()
            register(conn, wallet)
            conn.close()
            files, seconds = warm_cache(wallet)
            print(
                f"  {size}: server pid {server.pid} on port {server.port}; page cache warmed "
                f"({files} files read in {seconds:.1f} s)",
                flush=True,
            )
            idle = idle_health(server.port)
            result["health_idle"] = latency_summary(idle.latencies, idle.errors)
            result["rss_idle_mb"] = round(server.proc_status("VmRSS"), 1)
            result["hwm_before_mb"] = round(server.proc_status("VmHWM"), 1)

            result["plain"] = run_pass(server, wallet, work, size, runs, encrypted=False)
            result["plain"]["vmhwm_mb"] = round(server.proc_status("VmHWM"), 1)

            if size == extras_size:
                result["p3_rename"] = p3_rename_during_backup(server, wallet, work, size)
                result["p5_rename"] = p5_rename_big(server, wallet)

            if encrypt:
                result["login"] = login(server)
                reset = server.reset_peak()
                result["encrypted"] = run_pass(server, wallet, work, size, runs, encrypted=True)
                result["encrypted"]["vmhwm_mb"] = round(server.proc_status("VmHWM"), 1)
                result["encrypted"]["vmhwm_reset_before"] = reset
            result["vmhwm_mb"] = max(result["plain"]["vmhwm_mb"], result.get("encrypted", {}).get("vmhwm_mb", 0))
        finally:
            server.stop()
    return result


# -- the report ---------------------------------------------------------------------------------


def fmt_health(h: dict[str, Any]) -> str:
    if not h or not h.get("samples"):
        return "-"
    return f"{h['p50_ms']:.2f}/{h['p99_ms']:.2f}/{h['max_ms']:.2f}/{h['samples']}"


def report(results: list[dict[str, Any]], encrypt: bool) -> tuple[str, dict[str, Any]]:
    lines = []
    names = [ref[0] for ref in available_references()]
    header = (
        f"{'size':>7} {'pass':<9} " + " ".join(f"{n + ' s':>14}" for n in names) + f" {'API s':>7} "
        f"{'×bsdtar':>7} {'goal (aim)':>12} {'×zip':>6} {'health p50/p99/max/n ms':>26} {'VmHWM MB':>9}  ratio  health"
    )
    lines.append(header)
    lines.append("-" * len(header))
    goals: dict[str, Any] = {}
    for r in results:
        for label in ("plain", "encrypted"):
            p = r.get(label)
            if not p:
                continue
            goal, aim = (P1_GOAL, P1_AIM) if label == "plain" else (P2_GOAL, P2_AIM)
            p["ratio_ok"] = None if p["ratio"] is None else p["ratio"] <= goal
            p["health_ok"] = health_ok(p["health"])
            tools = " ".join(f"{p['reference_median_s'].get(n, float('nan')):>14.2f}" for n in names)
            lines.append(
                f"{r['size']:>7} {label:<9} {tools} {p['api_median_s']:>7.2f} {p['ratio'] or float('nan'):>7.3f} "
                f"{f'≤{goal:.2f} ({aim:.2f})':>12} {p['zip_ratio'] or float('nan'):>6.3f} "
                f"{fmt_health(p['health']):>26} {p['vmhwm_mb']:>9.1f}  "
                f"{verdict(p['ratio_ok'])}   {verdict(p['health_ok'])}"
            )
    lines.append("")
    by_size = {r["size"]: r for r in results}
    goal_row = by_size.get(GOAL_SIZE)
    if goal_row is None and results:
        goal_row = min(results, key=lambda r: abs(r["size"] - GOAL_SIZE))
    gs = goal_row["size"] if goal_row else None
    note = "" if gs == GOAL_SIZE else f" (measured at {gs}: {GOAL_SIZE} not run)"

    def add(key: str, text: str, ok: bool | None, figures: dict[str, Any]) -> None:
        goals[key] = {"result": verdict(ok), **figures}
        lines.append(f"{key:<4} {text:<118} {verdict(ok)}")

    if goal_row:
        p = goal_row["plain"]
        if p["ratio"] is None:
            add("P1", "bsdtar is not installed: no ratio", None, {})
        else:
            ok1 = p["ratio"] <= P1_GOAL and (p["zip_ratio"] is None or p["zip_ratio"] <= P1_ZIP_GOAL)
            add(
                "P1",
                f"API/bsdtar store at {gs}: {p['ratio']:.3f} (goal ≤ {P1_GOAL}, aim {P1_AIM}); API/zip -r -q "
                f"{p['zip_ratio']} (goal ≤ {P1_ZIP_GOAL}){note}",
                ok1,
                {"size": gs, "ratio": p["ratio"], "zip_ratio": p["zip_ratio"], "aim_met": p["ratio"] <= P1_AIM},
            )
        e = goal_row.get("encrypted")
        if e and e["ratio"] is not None:
            add(
                "P2",
                f"encrypted API/bsdtar store at {gs}: {e['ratio']:.3f} (goal ≤ {P2_GOAL}, aim {P2_AIM}){note}",
                e["ratio"] <= P2_GOAL,
                {"size": gs, "ratio": e["ratio"], "aim_met": e["ratio"] <= P2_AIM},
            )
        else:
            add("P2", "not run (--no-encrypt)", None, {})
        h = p["health"]
        add(
            "P3",
            f"health during {gs} backups: p99 {h['p99_ms']} ms, max {h['max_ms']} ms, {h['samples']} samples "
            f"(goal p99 ≤ {P3_P99_MS:g}, max ≤ {P3_MAX_MS:g}; aim p99 ≤ {P3_AIM_P99_MS:g})",
            health_ok(h),
            {"size": gs, **h, "aim_met": bool(h["samples"]) and h["p99_ms"] <= P3_AIM_P99_MS},
        )
        if e:
            he = e["health"]
            add(
                "P3e",
                f"health during encrypted {gs} backups: p99 {he['p99_ms']} ms, max {he['max_ms']} ms, "
                f"{he['samples']} samples",
                health_ok(he),
                {"size": gs, **he},
            )
        r3 = goal_row.get("p3_rename", {})
        if r3.get("renames_ms"):
            ok = not r3["failures"] and r3["rename_max_ms"] < P3_RENAME_MS and r3["renames_during_backup"] > 0
            add(
                "P3r",
                f"small wallet's rename during a {gs} backup: median {r3['rename_median_ms']} ms, "
                f"max {r3['rename_max_ms']} ms, {r3['renames_during_backup']}/{len(r3['renames_ms'])} overlapped "
                f"(goal < {P3_RENAME_MS:g} ms)",
                ok,
                r3,
            )
        else:
            add(
                "P3r",
                f"small wallet's rename during a backup: failed {r3.get('failures') or r3.get('error')}",
                False,
                r3,
            )
        r5 = goal_row.get("p5_rename", {})
        ok5 = bool(r5.get("renames_ms")) and not r5.get("failures") and r5["median_ms"] <= P5_MS
        add(
            "P5",
            f"rename of the {gs} wallet: median {r5.get('median_ms')} ms, max {r5.get('max_ms')} ms over "
            f"{len(r5.get('renames_ms', []))} (goal ≤ {P5_MS:g} ms){note}",
            ok5,
            r5,
        )
    small, big = by_size.get(P4_SIZES[0]), by_size.get(P4_SIZES[1])
    if small and big:
        growth = big["vmhwm_mb"] / small["vmhwm_mb"] - 1
        add(
            "P4",
            f"VmHWM {big['vmhwm_mb']:.1f} MB at {P4_SIZES[1]} vs {small['vmhwm_mb']:.1f} MB at "
            f"{P4_SIZES[0]}: {growth * 100:+.1f}% (goal ≤ {P4_MAX_MB:g} MB and ≤ +{P4_GROWTH * 100:g}%)",
            big["vmhwm_mb"] <= P4_MAX_MB and growth <= P4_GROWTH,
            {"vmhwm_300k_mb": big["vmhwm_mb"], "vmhwm_10k_mb": small["vmhwm_mb"], "growth": round(growth, 3)},
        )
    else:
        biggest = max(results, key=lambda r: r["size"]) if results else None
        text = "needs sizes 10000 and 300000"
        if biggest:
            text += f"; VmHWM {biggest['vmhwm_mb']:.1f} MB at {biggest['size']}"
        add("P4", text, None, {})
    lines.append("")
    lines.append(
        "health = GET /api/health every 10 ms during the API backups (p50/p99/max ms, samples); "
        "VmHWM = the server's peak RSS in that pass (reset before the encrypted pass)"
    )
    for r in results:
        lines.append(
            f"{r['size']:>7}: idle RSS {r['rss_idle_mb']} MB, idle health {fmt_health(r['health_idle'])}"
            + (f", login {r['login']['login_s']} s" if r.get("login") else "")
        )
    problems = [
        f"{r['size']} {label}: {x}"
        for r in results
        for label in ("plain", "encrypted")
        for x in r.get(label, {}).get("problems", [])
    ]
    if problems:
        lines.append("API problems: " + "; ".join(problems))
    return "\n".join(lines), goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,300000", help="comma-separated coin counts")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per size and pass (at least 3)")
    parser.add_argument(
        "--encrypt",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the logged-in pass, every coin re-encrypted (P2; default on)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "out",
        help="wallets go to DIR/wallets, results to DIR/backup-results.json (default bench/out)",
    )
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes must be comma-separated integers")
    if not sizes or min(sizes) <= 0:
        parser.error("--sizes must be positive")
    if shutil.which("zip") is None:
        print(ZIP_MISSING, file=sys.stderr)
        return 2

    dest = args.out / "wallets"
    sizes = plan_disk(sizes, dest)
    if not sizes:
        print("nothing to run", file=sys.stderr)
        return 1
    extras_size = min(sizes, key=lambda s: abs(s - GOAL_SIZE))
    zip_version = subprocess.run(["zip", "-v"], capture_output=True, text=True).stdout.splitlines()[1:2]
    started = time.perf_counter()
    results = []
    for size in sizes:
        wallet = build_wallet(size, dest, announce=True)
        print(f"  {size}: the disk settled in {settle_disk():.1f} s (untimed)", flush=True)
        results.append(bench_size(size, wallet, args.runs, args.encrypt, extras_size))
    table, goals = report(results, args.encrypt)
    load = os.getloadavg()
    print()
    print(
        f"bench/backup.py --sizes {','.join(map(str, sizes))} --runs {args.runs}"
        f"{'' if args.encrypt else ' --no-encrypt'}  ({os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {time.perf_counter() - started:.0f} s)"
    )
    print(table)
    write_results(
        args.out / "backup-results.json",
        {
            "zip": zip_version[0].strip() if zip_version else "zip",
            "references": [ref[0] for ref in available_references()],
            "load_average": load,
            "runs": args.runs,
            "goals": goals,
            "sizes": results,
            "table": table.splitlines(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
