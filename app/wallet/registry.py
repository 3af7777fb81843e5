"""The wallet registry, Client_Data/wallet-locations.csv: read it, and rewrite it whole and atomically."""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from app.wallet.storage import atomic_write_bytes

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


def parse_registry(text: str | bytes) -> Registry:
    """The rows of a registry file. Lines are split on newlines only (a path may hold any other
    character); a line that is not UTF-8 or not a valid row is skipped with a warning and kept in
    `bad_rows`, so that the next write can save the original beside the new file."""
    entries: list[RegistryEntry] = []
    bad: list[str] = []
    seen: set[str] = set()
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    if raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark left by a Windows editor
        raw = raw[3:]
    for raw_line in raw.split(b"\n"):
        raw_line = raw_line.removesuffix(b"\r")
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            shown = raw_line.decode("utf-8", "backslashreplace")
            log.warning("wallet registry: skipping a row that is not UTF-8: %s", shown)
            bad.append(shown)
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = next(csv.reader([line], strict=True))
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
    if not path or path_problem(path) or not os.path.isabs(path) or kind not in TYPES:
        return None
    # A hand-edited row may carry a trailing slash or a doubled one; the registry compares canonical paths.
    return RegistryEntry(os.path.normpath(path), kind)


def path_problem(path: str) -> str | None:
    """Why `path` cannot be a registry row (the file is one row per line), or None when it can."""
    if any(ch in path for ch in "\0\n\r"):
        return "it contains a line break or a NUL character"
    if any("\ud800" <= ch <= "\udfff" for ch in path):
        return "it is not valid UTF-8"
    return None


def render_registry(entries: list[RegistryEntry] | tuple[RegistryEntry, ...]) -> bytes:
    for entry in entries:
        if path_problem(entry.wallet_path):
            raise ValueError(f"not a registrable path: {entry.wallet_path!r}")
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
    return parse_registry(data)


def write_registry(path: Path, entries: list[RegistryEntry] | tuple[RegistryEntry, ...]) -> None:
    """Replace the registry atomically; rows of the old file that could not be parsed are kept beside it."""
    data = render_registry(entries)
    current = read_registry(path)
    if current.bad_rows:
        keep = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9}")
        atomic_write_bytes(keep, path.read_bytes())
        log.warning("wallet registry: unparsable rows kept in %s", keep)
    atomic_write_bytes(path, data)


def location_type(path: str) -> str:
    """Informational: where the folder lives (a removable medium, a network mount, or a local disk)."""
    removable_roots = ("/media/", "/run/media/", "/mnt/", "/Volumes/")
    if path.startswith(removable_roots):
        return "removable"
    if path.startswith("//") or path.startswith("\\\\"):
        return "network"
    return "local"
