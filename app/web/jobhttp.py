"""The queue's aiohttp boundary: `setup(app)` and `runner_key`; planning, submitting and answering a job;
the job URLs; runner exceptions turned into the API's answers (the one place they are).

Exceptions of the runner, as answered here::

    QueueFull (and RunnerClosed)   -> 503 + Retry-After
    StoreUnavailable               -> 503 + Retry-After "The job could not be saved (<why>); nothing was started"
    IdempotencyMismatch            -> 422 "Idempotency-Key reused with different parameters"
    JobNotFound                    -> 404 "Job not found: <id>"
    JobNotCancellable              -> 409 with the job

A job endpoint is one line: `submit_job(request, kind)`. The kind's `plan` runs every check that needs
no job on the app's pool, so a bad request never creates a job. By default the endpoint waits for the
job and answers exactly its result or error; `Prefer: respond-async` (RFC 7240) or `async=true`
answers 202 with where to watch it; `Prefer: wait=N` bounds the wait and falls back to 202. The wait
is shielded: a client that disconnects never cancels the job.

An `Idempotency-Key` is looked up before the plan (a retry of a rename that already ran gets that
job, not a 404 from checks the first run changed), with a fingerprint of the method, the path and
the parameters (all but `async`, which only chooses how to answer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from app.wallet.errors import ApiError
from app.web.params import flag, read_params
from app.web.state import config_key, job_executor_key, keyring_key, plans_key, run_blocking, wallets_key
from jobs.errors import IdempotencyMismatch, JobNotCancellable, JobNotFound, QueueFull, StoreUnavailable
from jobs.history import request_fingerprint
from jobs.kinds import SPECS, register_kinds, temporary_places
from jobs.models import Job, JobKind, JobStatus
from jobs.runner import JobRunner
from jobs.services import Services
from jobs.shape import Params, Plan
from jobs.store import JobStore
from jobs.sweep import sweep_temporary

runner_key = web.AppKey("runner", JobRunner)

#: The status a synchronous caller gets when somebody else cancelled the job it was waiting for.
CANCELLED_STATUS = 409
#: Retry-After when the job store cannot be written (a full disk needs a person, not a quick retry)
STORE_RETRY_AFTER_S = 30
IDEMPOTENCY_MISMATCH = "Idempotency-Key reused with different parameters"
JOBS_PATH = "/api/jobs"


def setup(app: web.Application) -> None:
    """The job runner as a resource of `app` (after the executor and the wallet service)."""
    app.cleanup_ctx.append(_runner)
    app.on_shutdown.append(_stop_runner)


async def _runner(app: web.Application) -> AsyncIterator[None]:
    config = app[config_key]
    services = Services(config=config, wallets=app[wallets_key], keyring=app[keyring_key], plans=app.get(plans_key))
    runner = JobRunner(
        JobStore(config.jobs_dir),
        executor=app[job_executor_key],
        workers=config.workers,
        max_queued=config.max_queued,
        services=services,
    )
    register_kinds(runner, services)
    await runner.start()
    # After the interrupted jobs were settled (their cleanup may recover a finished archive from its
    # temporary name) and before any request: whatever temporary names are left belong to nobody.
    running = {job.id for job in runner.list(status="running", limit=10_000)}
    await run_blocking(app, sweep_temporary, await run_blocking(app, temporary_places, config), running)
    app[runner_key] = runner
    yield
    await runner.close()


async def _stop_runner(app: web.Application) -> None:
    """On shutdown, before the server waits for open requests: cancel running backups, end event streams."""
    if runner_key in app:
        await app[runner_key].close()


# -- URLs and JSON ------------------------------------------------------------------------------


def job_url(job_id: str) -> str:
    return f"{JOBS_PATH}/{job_id}"


def job_json(job: Job) -> dict[str, Any]:
    """Exactly the job JSON of jobs.md: the job's own fields and its links."""
    base = job_url(job.id)
    return {**job.to_json(), "links": {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"}}


@contextmanager
def runner_errors() -> Iterator[None]:
    """Turn the runner's refusals into the API's answers."""
    try:
        yield
    except QueueFull as exc:
        raise ApiError(
            503, "Too many jobs are queued; try again later", headers={"Retry-After": str(exc.retry_after)}
        ) from None
    except StoreUnavailable as exc:
        raise ApiError(
            503,
            f"The job could not be saved ({exc.reason}); nothing was started",
            headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        ) from None
    except IdempotencyMismatch:
        raise ApiError(422, IDEMPOTENCY_MISMATCH) from None
    except JobNotFound as exc:
        raise ApiError(404, f"Job not found: {exc.args[0]}") from None
    except JobNotCancellable as exc:
        state = exc.job.status if exc.job.status.finished else "past the point where it can stop"
        raise ApiError(409, f"Job cannot be cancelled: it is {state}", extra={"job": job_json(exc.job)}) from None


def find_job(runner: JobRunner, job_id: str) -> Job:
    with runner_errors():
        return runner.get(job_id)


# -- submitting ---------------------------------------------------------------------------------


async def submit_job(
    request: web.Request, kind: JobKind, plan: Callable[[Params, Services], Plan] | None = None
) -> web.Response:
    """Plan the job of `kind` from the request's parameters (or with `plan`, another planner of the
    same kind: a legacy route), then queue it and answer as the caller prefers."""
    params: Params = await read_params(request)
    runner = request.app[runner_key]
    services = runner.services
    assert services is not None  # the runner made by setup() always has them
    key = idempotency_key(request)
    fingerprint = request_fingerprint(
        request.method, request.path, {name: value for name, value in params.items() if name != "async"}
    )
    if key is not None:
        with runner_errors():
            earlier = await runner.find_idempotent(key, fingerprint)
        if earlier is not None:
            return await answer_submitted(request, earlier)
    planned: Plan = await run_blocking(request.app, plan or SPECS[kind].plan, params, services)
    return await answer_with_job(
        request, kind, wallet_path=planned.lane, params=planned.params(), fingerprint=fingerprint
    )


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and (len(key) > 255 or not key.isprintable()):
        raise ApiError(400, "Idempotency-Key must be printable and at most 255 characters")
    return key


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
    request: web.Request,
    kind: JobKind,
    *,
    wallet_path: str,
    params: dict[str, Any],
    fingerprint: str | None = None,
) -> web.Response:
    """Queue a job whose request passed its checks; wait for it and answer, or answer 202."""
    runner = request.app[runner_key]
    key = idempotency_key(request)
    with runner_errors():
        job = await runner.submit(
            kind, wallet_path=wallet_path, params=params, idempotency_key=key, fingerprint=fingerprint
        )
    return await answer_submitted(request, job)


async def answer_submitted(
    request: web.Request, job: Job, finished: Callable[[Job], web.Response] | None = None
) -> web.Response:
    """For a job just queued (or found by its Idempotency-Key): answer 202 at once when asked to, else
    wait (bounded by Prefer: wait=N) and answer the finished job (`job_answer`, or `finished` for an
    endpoint with its own answer)."""
    runner = request.app[runner_key]
    preferences = parse_prefer(request.headers.getall("Prefer", []))
    asynchronous = "respond-async" in preferences or flag(await read_params(request), "async")
    applied = ["respond-async"] if "respond-async" in preferences else []
    if asynchronous:
        return accepted(job, applied)
    wait = prefer_wait(preferences)
    job = await runner.wait(job.id, wait)
    if not job.status.finished:
        return accepted(job, [*applied, f"wait={preferences['wait']}"])
    return (finished or job_answer)(job)


def accepted(job: Job, applied: list[str]) -> web.Response:
    status_url = job_url(job.id)
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
