"""The sync/async contract every job endpoint shares: submit, then wait and answer, or answer 202 at once.

Validation happens before `answer_with_job` is called, so a bad request never creates a job. By default
the endpoint waits for the job and answers exactly its result or error; `Prefer: respond-async` (RFC 7240)
or `async=true` answers 202 with where to watch it; `Prefer: wait=N` bounds the wait and falls back to 202.
The wait is shielded: a client that disconnects never cancels the job.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from app.wallet.errors import ApiError
from app.web.params import flag, read_params
from jobs.models import Job, JobKind, JobStatus
from app.web.state import runner_key
from jobs.runner import JobNotFound, JobRunner, QueueFull

#: The body a synchronous caller gets when somebody else cancelled the job it was waiting for.
CANCELLED_STATUS = 409


def parse_prefer(values: list[str]) -> dict[str, str]:
    """`Prefer: respond-async, wait=10` -> {"respond-async": "", "wait": "10"} (RFC 7240, loosely)."""
    preferences: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            token = item.split(";", 1)[0].strip()
            if not token:
                continue
            name, _, argument = token.partition("=")
            preferences.setdefault(name.strip().lower(), argument.strip().strip('"'))
    return preferences


def prefer_wait(preferences: dict[str, str]) -> float | None:
    raw = preferences.get("wait")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


async def answer_with_job(
    request: web.Request, kind: JobKind, *, wallet_path: str, params: dict[str, Any]
) -> web.Response:
    runner = request.app[runner_key]
    preferences = parse_prefer(request.headers.getall("Prefer", []))
    asynchronous = "respond-async" in preferences or flag(await read_params(request), "async")
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and (len(key) > 255 or not key.isprintable()):
        raise ApiError(400, "Idempotency-Key must be printable and at most 255 characters")
    try:
        job = await runner.submit(kind, wallet_path=wallet_path, params=params, idempotency_key=key)
    except QueueFull as exc:
        raise ApiError(
            503, "Too many jobs are queued; try again later", headers={"Retry-After": str(exc.retry_after)}
        ) from None
    applied = ["respond-async"] if "respond-async" in preferences else []
    if asynchronous:
        return accepted(job, applied)
    wait = prefer_wait(preferences)
    job = await runner.wait(job.id, wait)
    if not job.status.finished:
        return accepted(job, [*applied, f"wait={preferences['wait']}"])
    return job_answer(job)


def accepted(job: Job, applied: list[str]) -> web.Response:
    status_url = f"/api/jobs/{job.id}"
    headers = {"Location": status_url, "Retry-After": "1"}
    if applied:
        headers["Preference-Applied"] = ", ".join(applied)
    body = {
        "success": True,
        "job_id": job.id,
        "task_id": job.id,
        "status": str(job.status),
        "status_url": status_url,
        "events_url": f"{status_url}/events",
    }
    return web.json_response(body, status=202, headers=headers)


def job_answer(job: Job) -> web.Response:
    """What the synchronous endpoint answers for a finished job: its result, or its exact error."""
    if job.status is JobStatus.COMPLETED:
        return web.json_response(job.result)
    if job.status is JobStatus.FAILED and job.error:
        return web.json_response(job.error["body"], status=job.error["http_status"])
    body = {"success": False, "error": "The job was cancelled", "code": CANCELLED_STATUS, "job_id": job.id}
    return web.json_response(body, status=CANCELLED_STATUS)


def find_job(runner: JobRunner, job_id: str) -> Job:
    try:
        return runner.get(job_id)
    except JobNotFound:
        raise ApiError(404, f"Job not found: {job_id}") from None
