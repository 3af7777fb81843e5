"""The plan and its runs: the Plan record, run statuses and triggers, and their JSON forms.

A plan is stored and compared in UTC; its JSON shows times with the offset of the server's zone
(plans.md). Runs are plain JSON records (`run_record`), kept newest first, at most `MAX_RUNS` a plan.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Any

from .retention import KeepPolicy

#: runs remembered per plan (plans.md)
MAX_RUNS = 100
#: a plan's name, at most this many characters
MAX_NAME_CHARS = 200
#: destinations per plan
MAX_DESTINATIONS = 8


class RunStatus(StrEnum):
    """Where a run is, and how it ended."""

    #: its plan-run job waits in the wallet's lane
    QUEUED = "queued"
    #: its job is running
    RUNNING = "running"
    #: every destination has a verified archive
    COMPLETED = "completed"
    #: at least one destination has a verified archive and at least one has not
    PARTIAL = "partial"
    #: no destination has one, or the run could not start
    FAILED = "failed"
    #: stopped on request before pruning began
    CANCELLED = "cancelled"
    #: the previous run of the plan was still queued or running at the scheduled time
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class Trigger(StrEnum):
    """Why a run happened."""

    #: its scheduled time came
    SCHEDULE = "schedule"
    #: POST /api/backup-plans/{id}/run
    MANUAL = "manual"
    #: a scheduled time passed while the server was down or the machine slept
    CATCH_UP = "catch-up"


def new_plan_id() -> str:
    return f"p_{secrets.token_hex(8)}"


def new_run_id() -> str:
    return f"r_{secrets.token_hex(8)}"


def show_time(moment: datetime | None, zone: tzinfo) -> str | None:
    """ISO 8601 with the zone's offset, to the second: ``2026-11-30T02:30:00+01:00``."""
    if moment is None:
        return None
    return moment.astimezone(zone).isoformat(timespec="seconds")


def read_time(raw: Any) -> datetime | None:
    if raw is None:
        return None
    moment = datetime.fromisoformat(str(raw))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Plan:
    """One backup plan. `wallet_path` and `destinations` are canonical; times are UTC."""

    id: str
    name: str
    wallet_path: str
    destinations: tuple[str, ...]
    schedule: str
    keep: KeepPolicy
    encrypted_only: bool
    enabled: bool
    created_at: datetime
    next_run_at: datetime | None

    def replace(self, **changes: Any) -> Plan:
        return dataclasses.replace(self, **changes)

    def to_json(self, zone: tzinfo, last_run: dict[str, Any] | None) -> dict[str, Any]:
        """The plan as the API shows it (plans.md)."""
        return {
            **self._settings(),
            "verify": True,
            "encrypted_only": self.encrypted_only,
            "enabled": self.enabled,
            "created_at": show_time(self.created_at, zone),
            "next_run_at": show_time(self.next_run_at, zone) if self.enabled else None,
            "last_run": last_run,
            "links": {"self": f"/api/backup-plans/{self.id}", "runs": f"/api/backup-plans/{self.id}/runs"},
        }

    def to_record(self) -> dict[str, Any]:
        """The stored form: full-precision UTC times."""
        return {
            **self._settings(),
            "encrypted_only": self.encrypted_only,
            "enabled": self.enabled,
            "created_at": self.created_at.isoformat(),
            "next_run_at": self.next_run_at.isoformat() if self.next_run_at else None,
        }

    def _settings(self) -> dict[str, Any]:
        """What the API and the stored form both say first, the same way."""
        return {
            "id": self.id,
            "name": self.name,
            "wallet_path": self.wallet_path,
            "destinations": list(self.destinations),
            "schedule": self.schedule,
            "keep": self.keep.to_json(),
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Plan:
        """Rebuild from `to_record()`; KeyError/ValueError/TypeError when malformed."""
        created_at = read_time(data["created_at"])
        if created_at is None:
            raise ValueError("plan without created_at")
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            wallet_path=str(data["wallet_path"]),
            destinations=tuple(str(d) for d in data["destinations"]),
            schedule=str(data["schedule"]),
            keep=KeepPolicy.from_json(data.get("keep")),
            encrypted_only=bool(data.get("encrypted_only", False)),
            enabled=bool(data.get("enabled", True)),
            created_at=created_at,
            next_run_at=read_time(data.get("next_run_at")),
        )


def run_record(
    *,
    run_id: str,
    job_id: str | None,
    trigger: Trigger,
    scheduled_for: str | None,
    status: RunStatus,
    started_at: str | None = None,
    finished_at: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A run as plans.md shows it; `extra` adds destinations, counters, reason, error."""
    return {
        "run_id": run_id,
        "job_id": job_id,
        "trigger": str(trigger),
        "scheduled_for": scheduled_for,
        "started_at": started_at,
        "finished_at": finished_at,
        "status": str(status),
        **extra,
    }
