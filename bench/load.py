"""Load and slow clients: health and listing latency, peak RSS, open files (issue: hardening, items 6, 10, 11).

    .venv/bin/python bench/load.py [--coins 20000] [--clients 200] [--seconds 10] [--jobs 4] [--logins 20] [--slow 1100]

Three cases against the real `python -m app`, each in its own server process:

1. load: `--clients` threads each list the wallets once per `--interval` seconds on a keep-alive
   connection while a backup of a `--coins` wallet runs (and /api/health is polled every 10 ms):
   listing and health p50/p99/max, the backup's time, the server's peak RSS. Then again with
   `--jobs` backups at once on as many workers and job threads: the jobs fill their pool.
   Then `--logins` logins at once while the wallets are listed every 50 ms.
2. slow clients: the server started with RLIMIT_NOFILE 1024 (soft and hard, a desktop's limit);
   `--slow` connections each send the start of a request and never finish its headers. Health
   latency meanwhile, errors, the server's open files and peak RSS, "Too many open files" lines in
   its log, and how many slow connections the header timeout had closed after it ran out.
3. big headers: 4 connections each send a 1 MiB header; the server's peak RSS before and after.
"""

from __future__ import annotations

import argparse
import http.client
import resource
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import HealthPoller, Poller, Server, build_wallet, call, percentile  # noqa: E402

SLOW_HEADERS = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def figures(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no answers"
    return (
        f"{name}: n={len(values)} p50={percentile(values, 50):.1f} ms p99={percentile(values, 99):.1f} ms "
        f"max={max(values):.1f} ms"
    )


def wallet_lister(port: int, interval: float, stop: threading.Event, offset: float) -> Poller:
    """Lists the wallets once per `interval` (from `offset` on: a jittered start) until `stop`; latencies in ms."""
    return Poller(port, "/api/wallets/list", interval, offset=offset, timeout=60, stop=stop)


def load_case(work: Path, wallets: list[Path], clients: int, interval: float, seconds: float) -> None:
    jobs = len(wallets)
    # With several jobs, as many workers and job threads as jobs: the jobs fill their pool.
    env = {"CLOUDCOIN_WORKERS": str(jobs), "CLOUDCOIN_THREADS": str(jobs)} if jobs > 1 else {}
    server = Server(work / f"load{jobs}" / "Client_Data", env=env)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        for wallet in wallets:
            status, body = call(conn, "POST", "/api/wallets/locations", {"path": str(wallet)})
            assert status == 200, body
        stop = threading.Event()
        listers = [wallet_lister(server.port, interval, stop, interval * i / clients) for i in range(clients)]
        with HealthPoller(server.port) as health:
            for lister in listers:
                lister.start()
            time.sleep(min(2.0, seconds / 4))  # every client in its rhythm
            started = time.perf_counter()
            statuses = run_backups(conn, wallets, work / f"out{jobs}")
            backup_s = time.perf_counter() - started
            time.sleep(max(0.0, seconds - backup_s))
            stop.set()
            for lister in listers:
                lister.join()
        listing = [v for lister in listers for v in lister.latencies]
        what = (
            "one backup"
            if jobs == 1
            else f"{jobs} backups of {jobs} wallets at once ({jobs} workers, {jobs} job threads)"
        )
        print(f"\n[load] {clients} clients listing every {interval:g} s for ~{seconds:g} s, {what} meanwhile")
        print(f"  backups of {wallets[0].name}…: {statuses}, {backup_s:.2f} s until the last finished")
        print("  " + figures("listing", listing), f"errors={sum(lister.errors for lister in listers)}")
        print("  " + figures("health", health.latencies), f"errors={health.errors}")
        print(f"  server peak RSS (VmHWM): {server.proc_status('VmHWM'):.0f} MB")
    finally:
        server.stop()


def run_backups(conn: http.client.HTTPConnection, wallets: list[Path], destination: Path) -> list[object]:
    """One synchronous backup, or one per wallet submitted at once (async) and waited for; their outcomes."""
    if len(wallets) == 1:
        body = {"wallet_path": str(wallets[0]), "destination": str(destination)}
        return [call(conn, "POST", "/api/wallets/backup", body=body)[0]]
    ids = []
    for wallet in wallets:  # different wallets: jobs on one wallet wait for each other
        body = {"wallet_path": str(wallet), "destination": str(destination), "async": "true"}
        status, answer = call(conn, "POST", "/api/wallets/backup", body=body)
        assert status == 202, answer
        ids.append(answer["job_id"])
    outcomes: list[object] = []
    for job_id in ids:
        while True:
            _, job = call(conn, "GET", f"/api/jobs/{job_id}", {"wait": "60"})
            if job.get("status") in ("completed", "failed", "cancelled"):
                outcomes.append(job["status"])
                break
    return outcomes


def login_case(work: Path, count: int) -> None:
    server = Server(work / "login" / "Client_Data")
    try:
        stop = threading.Event()
        lister = wallet_lister(server.port, 0.05, stop, 0.0)
        lister.start()
        time.sleep(0.5)
        results: list[int] = []

        def login() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            results.append(call(conn, "POST", "/api/system/login", body={"password": "correct horse"})[0])
            conn.close()

        threads = [threading.Thread(target=login) for _ in range(count)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        logins_s = time.perf_counter() - started
        stop.set()
        lister.join()
        print(f"\n[logins] {count} logins at once, the wallets listed every 50 ms meanwhile")
        print(f"  logins: {sorted(set(results))}, {logins_s:.2f} s until the last answered")
        print("  " + figures("listing", lister.latencies), f"errors={lister.errors}")
        print(f"  server peak RSS (VmHWM): {server.proc_status('VmHWM'):.0f} MB")
    finally:
        server.stop()


def fresh_health(port: int, count: int) -> tuple[list[float], int]:
    """`count` health checks, each on a new connection (as a new client would come), 5 s timeout each."""
    latencies, errors = [], 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            status, _ = call(conn, "GET", "/api/health")
            conn.close()
        except (OSError, http.client.HTTPException):
            status = -1
        if status == 200:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            errors += 1
        time.sleep(0.1)
    return latencies, errors


def slow_case(work: Path, count: int, nofile: int, timeout_s: float) -> None:
    env = {"CLOUDCOIN_HEADER_TIMEOUT": str(timeout_s)}
    server = Server(work / "slow" / "Client_Data", env, nofile=nofile, output=work / "slow" / "server.out")
    sockets: list[socket.socket] = []
    try:
        rss_before = server.proc_status("VmRSS")
        with HealthPoller(server.port) as health:
            started = time.monotonic()
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                sock.setblocking(False)
                try:
                    sock.send(SLOW_HEADERS)
                except OSError:
                    pass  # already closed for a newer one: that is the cap at work
                sockets.append(sock)
            opened_s = time.monotonic() - started
            open_files = server.open_files()
            fresh, fresh_errors = fresh_health(server.port, 20)
        print(f"\n[slow clients] {count} connections that never finish their headers, RLIMIT_NOFILE {nofile}")
        print(f"  opened in {opened_s:.2f} s; the server holds {open_files} open files")
        print(
            "  " + figures("health meanwhile (one keep-alive connection)", health.latencies), f"errors={health.errors}"
        )
        print("  " + figures("health on a new connection each", fresh), f"errors={fresh_errors}")
        print(f"  server RSS {rss_before:.0f} MB before, peak (VmHWM) {server.proc_status('VmHWM'):.0f} MB")
        too_many = (work / "slow" / "server.out").read_text(errors="replace").count("Too many open files")
        print(f"  'Too many open files' lines in the log: {too_many}")
        time.sleep(timeout_s + 2.0)
        closed = 0
        for sock in sockets:
            try:
                closed += sock.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        print(f"  after the {timeout_s:g} s header timeout: {closed} of {count} closed by the server")
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


def big_header_case(work: Path) -> None:
    server = Server(work / "headers" / "Client_Data")
    try:
        before = server.proc_status("VmHWM")
        answers = []
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                try:
                    sock.sendall(
                        b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
                    )
                except OSError:
                    pass  # the server answered and closed before the whole header was sent
                answers.append(sock.recv(200).split(b"\r\n", 1)[0].decode(errors="replace"))
        print("\n[big headers] 4 connections sending a 1 MiB header")
        print(f"  answers: {sorted(set(answers))}")
        print(f"  server peak RSS (VmHWM): {before:.0f} MB before, {server.proc_status('VmHWM'):.0f} MB after")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coins", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between one client's listings")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, default=4, help="backups at once in the second load pass")
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--slow", type=int, default=1100)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    args = parser.parse_args()
    needed = args.slow + args.clients + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))
    with tempfile.TemporaryDirectory(prefix="cc-load-") as tmp:
        work = Path(tmp)
        wallets = [build_wallet(args.coins, work / "wallets", f"Bench{i}", announce=True) for i in range(args.jobs)]
        load_case(work, wallets[:1], args.clients, args.interval, args.seconds)
        load_case(work, wallets, args.clients, args.interval, args.seconds)
        login_case(work, args.logins)
        slow_case(work, args.slow, args.nofile, args.header_timeout)
        big_header_case(work)


if __name__ == "__main__":
    main()
