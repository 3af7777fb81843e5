"""Handlers of the job endpoints: list, read (long polling), events (SSE), cancel, the tasks poller."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from app.wallet.errors import ApiError, missing_parameter
from app.web.jobhttp import find_job, job_json, runner_errors, runner_key
from app.web.params import choice, integer, read_params
from jobs.models import Job, JobKind, JobStatus

#: A comment line this often keeps proxies from closing an idle event stream (jobs.md).
KEEPALIVE_SECONDS = 15.0
MAX_WAIT_SECONDS = 60


async def list_jobs(request: web.Request) -> web.Response:
    params = await read_params(request)
    status = choice(params, "status", tuple(JobStatus))
    kind = choice(params, "kind", tuple(JobKind))
    limit = integer(params, "limit", default=100, minimum=1, maximum=1000)
    jobs = request.app[runner_key].list(
        status=status, kind=kind, wallet_path=params.get("wallet_path") or None, limit=limit
    )
    return web.json_response({"jobs": [job_json(job) for job in jobs], "count": len(jobs)})


async def get_job(request: web.Request) -> web.Response:
    params = await read_params(request)
    runner = request.app[runner_key]
    job = find_job(runner, request.match_info["job_id"])
    wait = integer(params, "wait", default=0, minimum=0, maximum=MAX_WAIT_SECONDS)
    if wait and not job.status.finished:
        job = await runner.wait(job.id, wait)
    headers = {} if job.status.finished else {"Retry-After": "1"}
    return web.json_response(job_json(job), headers=headers)


async def cancel_job(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    with runner_errors():
        job = await runner.cancel(request.match_info["job_id"])
    return web.json_response(job_json(job), status=200 if job.status.finished else 202)


async def task_status(request: web.Request) -> web.Response:
    """The reference client's poller: {"status": "success", "payload": {id, status, progress, message, data}}."""
    params = await read_params(request)
    job_id = params.get("task_id") or params.get("id")
    if not job_id:
        raise missing_parameter("task_id")
    job = find_job(request.app[runner_key], job_id)
    data: Any = job.result if job.status is JobStatus.COMPLETED else (job.error["body"] if job.error else None)
    payload = {"id": job.id, "status": str(job.status), "progress": job.progress, "message": job.message, "data": data}
    return web.json_response({"status": "success", "payload": payload})


async def job_events(request: web.Request) -> web.StreamResponse:
    runner = request.app[runner_key]
    job = find_job(runner, request.match_info["job_id"])
    after = _last_event_id(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    async for item in runner.events(job.id, after=after, keepalive=KEEPALIVE_SECONDS):
        await response.write(b": keep-alive\n\n" if item is None else _event(item))
    await response.write_eof()
    return response


def _event(job: Job) -> bytes:
    name = str(job.status) if job.status.finished else "progress"
    data = json.dumps(job_json(job), separators=(",", ":"))
    return f"id: {job.seq}\nevent: {name}\ndata: {data}\n\n".encode()


def _last_event_id(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or "0"
    try:
        return max(0, int(raw))
    except ValueError:
        raise ApiError(400, "Last-Event-ID must be an integer") from None
