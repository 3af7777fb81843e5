"""The wallet registry, Client_Data/wallet-locations.csv: read it, and rewrite it whole and atomically."""
from __future__ import annotations

import csv
import io
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from app.storage import atomic_write_bytes

log = logging.getLogger(__name__)

COMMENT = "# CloudCoin wallet registry: one row per wallet; the first row is the active wallet"
HEADER = ("wallet_path", "type")
TYPES = ("local", "removable", "network")


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    wallet_path: str
    type: str = "local"


@dataclass(frozen=True, slots=True)
class Registry:
    entries: tuple[RegistryEntry, ...]
    bad_rows: tuple[str, ...] = ()

    def index_of(self, wallet_path: str) -> int | None:
        for index, entry in enumerate(self.entries):
            if entry.wallet_path == wallet_path:
                return index
        return None


def parse_registry(text: str) -> Registry:
    entries: list[RegistryEntry] = []
    bad: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = next(csv.reader([line]))
        except csv.Error:
            row = []
        if tuple(cell.strip() for cell in row) == HEADER:
            continue
        entry = _entry_from_row(row)
        if entry is None:
            log.warning("wallet registry: skipping a row that cannot be parsed: %r", line)
            bad.append(line)
        elif entry.wallet_path not in seen:
            seen.add(entry.wallet_path)
            entries.append(entry)
    return Registry(tuple(entries), tuple(bad))


def _entry_from_row(row: list[str]) -> RegistryEntry | None:
    if len(row) not in (1, 2):
        return None
    path = row[0]
    kind = row[1].strip() if len(row) == 2 else "local"
    if not path or "\0" in path or not os.path.isabs(path) or kind not in TYPES:
        return None
    return RegistryEntry(path, kind)


def render_registry(entries: list[RegistryEntry] | tuple[RegistryEntry, ...]) -> bytes:
    out = io.StringIO()
    out.write(COMMENT + "\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for entry in entries:
        writer.writerow((entry.wallet_path, entry.type))
    return out.getvalue().encode("utf-8")


def read_registry(path: Path) -> Registry:
    """The registry as on disk; a missing file is an empty registry (the caller recreates it)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Registry(())
    return parse_registry(data.decode("utf-8", errors="replace"))


def write_registry(path: Path, entries: list[RegistryEntry] | tuple[RegistryEntry, ...]) -> None:
    """Replace the registry atomically; rows of the old file that could not be parsed are kept beside it."""
    current = read_registry(path)
    if current.bad_rows:
        keep = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9}")
        atomic_write_bytes(keep, path.read_bytes())
        log.warning("wallet registry: unparsable rows kept in %s", keep)
    atomic_write_bytes(path, render_registry(entries))


def location_type(path: str) -> str:
    """Informational: where the folder lives (a removable medium, a network mount, or a local disk)."""
    removable_roots = ("/media/", "/run/media/", "/mnt/", "/Volumes/")
    if path.startswith(removable_roots):
        return "removable"
    if path.startswith("//") or path.startswith("\\\\"):
        return "network"
    return "local"
