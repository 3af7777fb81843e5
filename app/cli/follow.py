"""Long work (cli.md): submit with `Prefer: respond-async`, follow the job's event stream, report its end.

Ctrl-C while following: on a terminal the user chooses between cancelling the job and leaving it
running; without one the job is left running. Leaving it exits 130 and prints the job id.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import click

from app.cli.http import Answer, Api, CliFailure, Refused, error_message
from app.cli.output import emit_json, print_fields
from app.cli.progress import make_display
from app.cli.session import Settings, fail, run

ASYNC = {"Prefer": "respond-async"}
#: How a completed job's result decides the exit status: verify `ok: false`, a plan run not `completed`.
Judge = Callable[[dict[str, Any]], bool]


def succeeded(result: dict[str, Any]) -> bool:
    return True


def submit_and_follow(
    settings: Settings,
    submit: Callable[[Api], Awaitable[Answer]],
    *,
    detach: bool,
    judge: Judge = succeeded,
) -> NoReturn:
    answer = run(settings, submit)
    if answer.status != 202:  # the server answered with the result itself (it did not honour the preference)
        finish(settings, {"status": "completed", "result": answer.body}, judge)
    accepted = answer.body
    if detach:
        if settings.as_json:
            emit_json(accepted)
        else:
            click.echo(accepted["job_id"])
        sys.exit(0)
    follow(settings, accepted["job_id"], judge=judge)


def follow(settings: Settings, job_id: str, *, judge: Judge = succeeded, stream_json: bool = False) -> NoReturn:
    """Show the job until it ends, then print its result and exit with cli.md's status."""
    display = make_display(quiet=settings.as_json)

    async def watch(api: Api) -> dict[str, Any]:
        last: dict[str, Any] = {}
        async for job in api.events(f"/api/jobs/{job_id}/events"):
            last = job
            display.update(job)
            if stream_json:
                emit_json(job)
        return last

    try:
        final = run(settings, watch)
    except KeyboardInterrupt:
        display.close()
        final = interrupted(settings, job_id)
    else:
        display.close()
    finish(settings, final, judge, printed=stream_json)


def interrupted(settings: Settings, job_id: str) -> dict[str, Any]:
    """Ctrl-C: ask on a terminal whether to cancel; else (or on "no") leave the job running and exit 130."""
    if sys.stdin.isatty() and sys.stderr.isatty():
        try:
            cancel = click.confirm(
                f"\nCancel job {job_id}? (no: it keeps running on the server)", default=False, err=True
            )
        except click.Abort:
            cancel = False
        if cancel:
            try:
                return run(settings, lambda api: cancel_and_wait(api, job_id))
            except KeyboardInterrupt:
                pass
    click.echo(f"Job {job_id} left running. Follow it with: cloudcoin-wallet job {job_id} --follow", err=True)
    if settings.as_json:
        emit_json({"job_id": job_id, "status": "running"})
    else:
        click.echo(job_id)
    sys.exit(130)


async def cancel_and_wait(api: Api, job_id: str) -> dict[str, Any]:
    try:
        await api.call("POST", f"/api/jobs/{job_id}/cancel")
    except Refused as exc:
        if exc.status != 409:  # 409: it finished meanwhile (or can no longer stop); its end is reported below
            raise
    while True:
        job = (await api.call("GET", f"/api/jobs/{job_id}", params={"wait": "30"})).body
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.1)


def finish(settings: Settings, job: dict[str, Any], judge: Judge, *, printed: bool = False) -> NoReturn:
    status = job.get("status")
    if status == "completed":
        result = job.get("result") or {}
        if not printed:
            emit_json(result) if settings.as_json else print_fields(result, heading=_heading(job, result))
        sys.exit(0 if judge(result) else 1)
    if status == "failed":
        error = job.get("error") or {}
        body = error.get("body")
        http_status = error.get("http_status", 500)
        message = f"{error_message(body)} (HTTP {http_status})"
        fail(settings if not printed else _no_json(settings), CliFailure(message, 1, body))
    if not printed and settings.as_json:
        emit_json(job)
    click.echo(f"Error: job {job.get('id', '')} was {status or 'lost'}", err=True)
    sys.exit(1)


def _heading(job: dict[str, Any], result: dict[str, Any]) -> str | None:
    if result.get("message"):
        return None
    kind = job.get("kind") or result.get("command") or "job"
    # A plan run's job completes whatever the run's outcome: the heading says the run's own status.
    outcome = result.get("status") if isinstance(result.get("status"), str) else "completed"
    return f"{kind} {outcome}"


def _no_json(settings: Settings) -> Settings:
    return Settings(settings.server, settings.token, False)
