"""One command's settings and its way of running: asyncio for the calls, cli.md's exit status for failures."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from app.cli.http import Api, CliFailure
from app.cli.output import emit_json

T = TypeVar("T")

DEFAULT_SERVER = "http://127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class Settings:
    server: str
    token: str | None
    as_json: bool


def settings_of(ctx: click.Context) -> Settings:
    settings = ctx.find_object(Settings)
    assert settings is not None, "the group callback sets it"
    return settings


def run(settings: Settings, work: Callable[[Api], Awaitable[T]]) -> T:
    """`work(api)` in a fresh event loop and HTTP session; a CliFailure ends the command."""

    async def go() -> T:
        async with Api(settings.server, settings.token) as api:
            return await work(api)

    try:
        return asyncio.run(go())
    except CliFailure as exc:
        fail(settings, exc)


def fetch(settings: Settings, method: str, path: str, **request: Any) -> Any:
    """The body of one call (``request``: what ``Api.call`` takes); a failure ends the command."""
    return run(settings, lambda api: api.call(method, path, **request)).body


def fail(settings: Settings, exc: CliFailure) -> NoReturn:
    """The server's body on stdout for --json; the message on one line of stderr; cli.md's status."""
    if settings.as_json and exc.body is not None:
        emit_json(exc.body)
    click.echo(f"Error: {exc.message}", err=True)
    sys.exit(exc.exit_code)


def absolute(path: str) -> str:
    """cli.md: ZIP, DIR and LOCATION given relative are made absolute where the client runs."""
    return os.path.abspath(os.path.expanduser(path))


def params_of(**values: Any) -> dict[str, Any]:
    """A request's parameters without the options the user left out."""
    return {key: value for key, value in values.items() if value is not None}
