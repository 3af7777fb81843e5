"""The job model: its status and kind enums, the Job record, and the exceptions job code raises."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypedDict

from app.wallet.errors import ApiError


class JobStatus(StrEnum):
    """Where a job is in its life: ``queued`` → ``running`` → one final status."""

    #: waiting in its wallet's lane for a worker
    QUEUED = "queued"
    #: its job function is running
    RUNNING = "running"
    #: finished with a result (the body the synchronous endpoint answers with)
    COMPLETED = "completed"
    #: finished with an error (the HTTP status and body of that failure)
    FAILED = "failed"
    #: stopped on request before it finished (or never started)
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for the three final statuses, after which a job never changes again."""
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


class JobKind(StrEnum):
    """What a job does; the value is the name the API shows."""

    #: archive a wallet folder into an encrypted ZIP
    BACKUP = "wallet-backup"
    #: rename a wallet folder and its registry row
    RENAME = "wallet-rename"
    #: extract a backup into a new wallet
    RESTORE = "wallet-restore"
    #: check a backup archive against its manifest
    VERIFY = "backup-verify"
    #: one run of a backup plan: archive once, verified copies, retention (jobs/plans/)
    PLAN_RUN = "plan-run"


class JobError(TypedDict):
    """A failed job's error as jobs.md shows it: the status and body its endpoint answers."""

    http_status: int
    body: dict[str, Any]


class JobFailed(Exception):
    """Raised by job code to fail the job with an exact HTTP answer (status and body)."""

    def __init__(self, http_status: int, body: dict[str, Any]) -> None:
        super().__init__(http_status, body)
        self.http_status = http_status
        self.body = body

    def __str__(self) -> str:
        return f"{self.http_status} {self.body!r}"

    @property
    def error(self) -> JobError:
        return JobError(http_status=self.http_status, body=self.body)

    @classmethod
    def from_error(cls, error: ApiError) -> JobFailed:
        """The failure that answers exactly what the handled API error `error` would."""
        return cls(error.status, error.body)

    @classmethod
    def plain(cls, status: int, message: str, **extra: Any) -> JobFailed:
        """A failure with api.md's {"success": false, "error", "code"} body (plus `extra` fields)."""
        return cls.from_error(ApiError(status, message, extra=extra))


class JobCancelled(Exception):
    """Raised by ``JobContext.check_cancelled()`` once a cancel was requested; the job ends cancelled."""


def new_job_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_time(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a ``Z``: ``2026-11-22T10:04:11.204Z``."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(slots=True)
class Job:
    """One job. Only the runner mutates it; everyone else reads it or its JSON.

    ``params``, ``result`` and ``error`` are replaced, never mutated in place, so a shallow
    ``snapshot()`` is a consistent copy. ``seq`` counts published changes (the SSE event id).
    """

    id: str
    kind: JobKind
    wallet_path: str
    params: dict[str, Any] = field(default_factory=dict)
    status: JobStatus = JobStatus.QUEUED
    progress: int = 0
    message: str = ""
    #: what the job is doing now (jobs.md): archiving, verifying, placing, pruning, …; None before it says
    phase: str | None = None
    done: int = 0
    total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: JobError | None = None
    idempotency_key: str | None = None
    #: what the request with that key asked for (method, path, parameters), as a digest
    idempotency_fingerprint: str | None = None
    cancellable: bool = True
    seq: int = 1

    @classmethod
    def new(
        cls,
        kind: JobKind,
        *,
        wallet_path: str,
        params: dict[str, Any],
        idempotency_key: str | None = None,
        idempotency_fingerprint: str | None = None,
        cancellable: bool = True,
    ) -> Job:
        return cls(
            id=new_job_id(),
            kind=JobKind(kind),
            wallet_path=wallet_path,
            params=dict(params),
            idempotency_key=idempotency_key,
            idempotency_fingerprint=idempotency_fingerprint,
            cancellable=cancellable,
            message="Queued",
        )

    def snapshot(self) -> Job:
        """A shallow copy that later changes to this job do not affect."""
        return dataclasses.replace(self)

    def to_json(self) -> dict[str, Any]:
        """The job JSON of jobs.md but its `links`, which the HTTP side adds (it alone knows the URLs)."""
        return {
            "id": self.id,
            "kind": str(self.kind),
            "status": str(self.status),
            "progress": self.progress,
            "message": self.message,
            "phase": self.phase,
            "wallet_path": self.wallet_path,
            "params": self.params,
            "done": self.done,
            "total": self.total,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "created_at": format_time(self.created_at),
            "started_at": format_time(self.started_at),
            "finished_at": format_time(self.finished_at),
            "result": self.result,
            "error": self.error,
        }

    def to_record(self) -> dict[str, Any]:
        """The stored form: the job JSON, times at full precision, plus the runner's own fields."""
        record = self.to_json()
        # Full precision, so that a reloaded job equals the one stored.
        for name in ("created_at", "started_at", "finished_at"):
            value = getattr(self, name)
            record[name] = value.isoformat() if value is not None else None
        record["idempotency_key"] = self.idempotency_key
        record["idempotency_fingerprint"] = self.idempotency_fingerprint
        record["cancellable"] = self.cancellable
        record["seq"] = self.seq
        return record

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        """Rebuild a job from ``to_record()`` (or ``to_json()``) output. Raises ValueError/KeyError if malformed."""
        return cls(
            id=str(data["id"]),
            kind=JobKind(data["kind"]),
            wallet_path=str(data["wallet_path"]),
            params=dict(data.get("params") or {}),
            status=JobStatus(data["status"]),
            progress=int(data.get("progress", 0)),
            message=str(data.get("message", "")),
            phase=data.get("phase"),
            done=int(data.get("done", 0)),
            total=int(data.get("total", 0)),
            bytes_done=int(data.get("bytes_done", 0)),
            bytes_total=int(data.get("bytes_total", 0)),
            created_at=parse_time(data["created_at"]) or utcnow(),
            started_at=parse_time(data.get("started_at")),
            finished_at=parse_time(data.get("finished_at")),
            result=data.get("result"),
            error=data.get("error"),
            idempotency_key=data.get("idempotency_key"),
            idempotency_fingerprint=data.get("idempotency_fingerprint"),
            cancellable=bool(data.get("cancellable", True)),
            seq=int(data.get("seq", 1)),
        )

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind} {self.status} {self.progress}% {self.wallet_path!r}>"
