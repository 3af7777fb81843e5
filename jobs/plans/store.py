"""Where plans live on disk: `Client_Data/backup-plans/`, one JSON file a plan with its last runs.

Each plan is ``<id>.json`` = ``{"format", "version", "plan": {…}, "runs": [newest first, ≤ 100]}``,
rewritten whole on every change with an atomic write (temporary name, fsync, rename, fsync of the
folder), so a crash leaves the old file or the new one. Two small side files live beside them:
``wallet-history.json`` (each wallet's former paths, so archives made before a rename stay its own)
and ``verified.json`` (when an archive, by path, size and modification time, was last verified).
Every method here blocks: callers run them on the thread pool.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from app.wallet.storage import atomic_write_bytes

from .models import MAX_RUNS, Plan

log = logging.getLogger(__name__)

FORMAT = "cloudcoin-backup-plan"
VERSION = 1
FOLDER = "backup-plans"
HISTORY_FILE = "wallet-history.json"
VERIFIED_FILE = "verified.json"
_PLAN_FILE = re.compile(r"^p_[0-9a-f]{16}\.json$")


class PlanStore:
    """Reads and writes the plan files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"<PlanStore {self.root}>"

    def load(self) -> list[tuple[Plan, list[dict[str, Any]]]]:
        """Every readable plan and its runs. A damaged file is logged and left where it is."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        loaded = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not _PLAN_FILE.match(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                data = json.loads(Path(entry.path).read_bytes())
                if data.get("format") != FORMAT:
                    raise ValueError(f"not a {FORMAT} file")
                plan = Plan.from_record(data["plan"])
                runs = [run for run in data.get("runs", []) if isinstance(run, dict)][:MAX_RUNS]
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.error("backup plan file %s cannot be read and is ignored: %s", entry.path, exc)
                continue
            loaded.append((plan, runs))
        return loaded

    def save(self, plan: Plan, runs: list[dict[str, Any]]) -> None:
        data = {"format": FORMAT, "version": VERSION, "plan": plan.to_record(), "runs": runs[:MAX_RUNS]}
        self._write(f"{plan.id}.json", data)

    def delete(self, plan_id: str) -> None:
        try:
            os.unlink(self.root / f"{plan_id}.json")
        except FileNotFoundError:
            pass

    def read_side(self, name: str) -> dict[str, Any]:
        """A side file (HISTORY_FILE or VERIFIED_FILE) as a dict; empty when missing or damaged."""
        try:
            data = json.loads((self.root / name).read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("%s cannot be read and starts empty: %s", self.root / name, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def write_side(self, name: str, data: dict[str, Any]) -> None:
        self._write(name, data)

    def _write(self, name: str, data: dict[str, Any]) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_bytes(self.root / name, json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"))
