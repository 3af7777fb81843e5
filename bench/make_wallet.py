"""Writes the reference wallet of quality.md: N single-coin format-9 files plus the usual records.

    python bench/make_wallet.py N [--dest DIR] [--name NAME] [--force]

Standalone on purpose (it never imports the app), so a benchmark's input cannot depend on the code
it measures. The wallet is built under a temporary name beside its final place and renamed at the
end: an interrupted run never leaves a folder that looks complete.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from pathlib import Path

SUBFOLDERS = (
    "Bank Corrupted Counterfeit Duplicates Encryption_Failed Errored Export Fracked Grade Import "
    "Imported Limbo Lockered Pending Receipts Sent Suspect Trash Withdrawn"
).split()
COIN_SIZE = 439
AN_SIZE = 400
BATCH = 16384  # coins per block of random ANs: 6.5 MB, one os.urandom call each
TAG = "bench"
CSV_HEADER = "Symbol,Task ID,Date & Time,Remarks,Deposit,Withdraw,Description,Balance\n"
CSV_TARGET = 200 * 1024

# File header of a plaintext single coin: format 9, cloud 1, coin id 6, experimental 0,
# encryption 0, one coin, key check zero, state 0; then POWN (25 x "pass", a 0 nibble) and task id.
_HEADER_START = bytes([9, 1, 0, 6, 0, 0, 0, 1]) + bytes(7) + b"\x00"
_POWN = b"\xaa" * 12 + b"\xa0"


def default_dest() -> Path:
    return Path(__file__).resolve().parent / "out" / "wallets"


def count_coins(wallet: Path) -> int:
    total = 0
    for folder in ("Bank", "Fracked"):
        try:
            with os.scandir(wallet / folder) as it:
                total += sum(1 for e in it if e.name.endswith(".bin"))
        except FileNotFoundError:
            pass
    return total


def write_coins(root: Path, n: int, rng: random.Random) -> None:
    fracked = n // 10
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    first_serial = rng.randrange(1, 1 << 24)
    dir_fds = {name: os.open(root / name, os.O_RDONLY) for name in ("Bank", "Fracked")}
    try:
        done = 0
        while done < n:
            count = min(BATCH, n - done)
            block = os.urandom(count * (AN_SIZE + 3))  # ANs and task ids, one call per batch
            ans = memoryview(block)
            for k in range(count):
                i = done + k
                serial = first_serial + i
                denomination = rng.randrange(4)
                task = ans[count * AN_SIZE + 3 * k : count * AN_SIZE + 3 * k + 3]
                coin = b"".join((
                    _HEADER_START, _POWN, task,
                    bytes((0, 0, denomination)), serial.to_bytes(4, "big"),
                    ans[k * AN_SIZE : (k + 1) * AN_SIZE],
                ))  # fmt: skip
                name = f"{10**denomination:,} CloudCoin #{serial} '{TAG}'.bin"
                fd = os.open(name, flags, 0o644, dir_fd=dir_fds["Fracked" if i < fracked else "Bank"])
                try:
                    os.write(fd, coin)
                finally:
                    os.close(fd)
            done += count
    finally:
        for fd in dir_fds.values():
            os.close(fd)


def write_transactions(path: Path, rng: random.Random) -> None:
    rows = [CSV_HEADER]
    size = len(CSV_HEADER)
    balance = 0
    stamp = time.mktime((2025, 1, 1, 9, 0, 0, 0, 0, -1))
    while size < CSV_TARGET:
        amount = 10 ** rng.randrange(4) * rng.randrange(1, 50)
        deposit = rng.random() < 0.7 or balance < amount
        balance += amount if deposit else -amount
        stamp += rng.randrange(60, 86400)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))
        row = (
            f"CC,{rng.getrandbits(48):012x},{when},"
            f"{'Deposit' if deposit else 'Withdraw'} from bench,"
            f"{amount if deposit else ''},{'' if deposit else amount},"
            f'"Benchmark {"import" if deposit else "export"} of {amount:,} CloudCoin",{balance}\n'
        )
        rows.append(row)
        size += len(row)
    path.write_text("".join(rows), encoding="utf-8")


def write_records(root: Path, name: str, rng: random.Random) -> None:
    write_transactions(root / "transactions.csv", rng)
    created = time.strftime("%Y-%m-%dT%H:%M:%S")
    (root / "config.toml").write_text(
        f'[wallet]\nname = "{name}"\ncreated = "{created}"\nversion = 1\n\n[settings]\nencryption_enabled = false\n',
        encoding="utf-8",
    )
    for k in range(5):
        lines = [f"Receipt {k + 1} for wallet {name}", f"Task ID: {rng.getrandbits(48):012x}"]
        lines += [f"Coin #{rng.randrange(1, 1 << 24)}: pass" for _ in range(40)]
        (root / "Receipts" / f"2025-01-0{k + 1}_receipt_{k + 1}.txt").write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )


def make_wallet(n: int, dest: Path, name: str, *, force: bool = False) -> Path:
    wallet = dest / name
    if wallet.exists():
        if not force and count_coins(wallet) == n:
            print(f"exists with {n} coins, skipped (use --force to rebuild): {wallet}")
            return wallet
        shutil.rmtree(wallet)
    dest.mkdir(parents=True, exist_ok=True)
    building = dest / f".{name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        for sub in SUBFOLDERS:
            (building / sub).mkdir()
        rng = random.Random(n)  # denominations and serials repeat run to run; ANs never do
        write_coins(building, n, rng)
        write_records(building, name, rng)
        os.rename(building, wallet)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return wallet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="number of coin files")
    parser.add_argument("--dest", type=Path, default=default_dest(), help="parent folder")
    parser.add_argument("--name", help="wallet folder name (default Bench_<N>)")
    parser.add_argument("--force", action="store_true", help="rebuild even if it exists")
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("N must be >= 0")
    started = time.perf_counter()
    wallet = make_wallet(args.n, args.dest, args.name or f"Bench_{args.n}", force=args.force)
    print(f"{args.n} coins in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    print(wallet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
