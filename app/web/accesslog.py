"""One log line per request for people: method, path, status, duration; never the query (it may hold a secret)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("app.web.requests")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Long enough for any real path; a longer one is cut (the request line may be up to 1 MiB).
MAX_LOGGED_PATH = 300


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: it sees the final status, error answers included, and times event streams whole."""
    began = time.monotonic()
    status = "-"
    try:
        response = await handler(request)
        status = str(response.status)
        return response
    except web.HTTPException as exc:
        status = str(exc.status)
        raise
    except asyncio.CancelledError:
        status = "disconnected"
        raise
    finally:
        elapsed_ms = (time.monotonic() - began) * 1000
        log.info("%s %s %s %.1f ms", request.method, logged_path(request), status, elapsed_ms)


def logged_path(request: web.Request) -> str:
    """The path as sent (percent-encoded, so it cannot break the line), without the query string."""
    path = request.raw_path.split("?", 1)[0]
    return path if len(path) <= MAX_LOGGED_PATH else path[:MAX_LOGGED_PATH] + "…"
