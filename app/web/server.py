"""The HTTP server itself: header limits answered in JSON, the header timeout, a cap on connections, serving.

aiohttp parses a request before any middleware sees it, and answers what it cannot parse with a
plain-text 400 of its own. `GuardedRequestHandler` answers those in api.md's JSON shape instead, with
the status the limit means (414 for the request line, 431 for the headers). `GuardedServer` keeps the
number of open connections under a cap below the open-file limit: when a new connection would pass
it, the oldest connection that never sent a whole request (a client that never finishes its
headers) is closed for it, else the oldest idle keep-alive one, never one in the middle of a
request; so `/api/health` and real clients still get in while slow clients hold connections open.
The header timeout is aiohttp's keep-alive timer, which closes a
connection whose next request's headers have not arrived in time (see `handler_args`).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from app.wallet.config import Config
from app.wallet.errors import ApiError
from jobs.backup.batch import FILES_OPEN_AT_ONCE

log = logging.getLogger(__name__)

#: api.md: a request line over 16 KiB is 414, a header over 8 KiB or more than 100 headers 431. A
#: 4,096-character ASCII parameter fits a request line; longer or non-ASCII values go in the body.
MAX_REQUEST_LINE = 16 * 1024
MAX_FIELD_SIZE = 8 * 1024
MAX_HEADERS = 100
#: Open files the server needs besides its connections: logs, the job store, the listening socket,
#: the loop's own, and some per thread: a job thread's backup holds a batch of its source files open
#: at once, its folder, the archive and two spools; a request thread one file.
RESERVED_FILES = 64
FILES_PER_JOB_THREAD = FILES_OPEN_AT_ONCE + 8
FILES_PER_REQUEST_THREAD = 4
#: The listening socket's queue. asyncio accepts up to this many connections in one go, and can do so
#: about three times before the first of them reaches the cap's check: the cap leaves room for that.
BACKLOG = 32
ACCEPT_BURSTS = 3
#: At most one warning a minute that the cap was reached (a flood must not flood the log too).
CAP_WARNING_INTERVAL_S = 60.0
#: What an unlimited open-file limit counts as when the connection cap is worked out.
UNLIMITED_FILES = 1 << 20
#: How long a thread running Python may keep the GIL while another waits for it (CPython's default
#: is 5 ms). A job thread packing 100,000 coins runs Python nearly all the time, so the event loop,
#: woken by a request, waited up to this long, several times per request: health p99 was 14 ms
#: during a backup at the default, 3.5 ms at 0.5 ms, for no measurable loss of backup speed.
LOOP_SWITCH_INTERVAL_S = 0.0005


def handler_args(config: Config) -> dict[str, Any]:
    """The parser limits and the header timeout, for `web.Application(handler_args=…)`."""
    return {
        "max_line_size": MAX_REQUEST_LINE,
        "max_field_size": MAX_FIELD_SIZE,
        "max_headers": MAX_HEADERS,
        # Runs from the connection's start and again after each answer: a request whose headers have
        # not all arrived by then (or an idle keep-alive connection) is closed.
        "keepalive_timeout": config.header_timeout,
    }


def parse_error_answer(exc: HttpProcessingError, max_line_size: int) -> ApiError:
    """The JSON answer to a request aiohttp's parser refused."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == max_line_size:
            return ApiError(414, f"Request line is longer than {max_line_size} bytes")
        return ApiError(431, f"A request header is longer than {limit} bytes")
    if isinstance(exc, BadHttpMessage) and "too many headers" in exc.message.lower():
        return ApiError(431, f"More than {MAX_HEADERS} request headers")
    return ApiError(400, f"Malformed HTTP request ({type(exc).__name__})")


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering what it cannot parse in JSON."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer has begun: the connection can only be dropped
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if isinstance(exc, HttpProcessingError):
            error = parse_error_answer(exc, self.max_line_size)
            # One short line, no traceback: a client sending nonsense must not fill the log.
            log.info("refused a request from %s: %d %s", request.remote, error.status, error.message)
        else:
            error = ApiError(500, "Internal server error")
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        response = web.json_response(error.body, status=error.status)
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's server with `GuardedRequestHandler` and at most `max_connections` open connections."""

    def __init__(self, *args: Any, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self._warned_at = -CAP_WARNING_INTERVAL_S

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        connections = self.connections  # oldest first
        if len(connections) <= self.max_connections:
            return
        now = time.monotonic()
        if now - self._warned_at >= CAP_WARNING_INTERVAL_S:
            self._warned_at = now
            log.warning("%d connections open: closing the oldest idle ones for new ones", self.max_connections)
        # `_request_in_progress` and `_request_count` are aiohttp's own; without them every connection
        # counts as idle and as never having sent a request. Connections that never sent a whole
        # request (a slow or stalled client) go first, oldest first; then idle keep-alive ones.
        idle = [c for c in connections[:-1] if not getattr(c, "_request_in_progress", False)]
        idle.sort(key=lambda c: getattr(c, "_request_count", 0) > 0)  # stable: oldest first within each
        for victim in idle[: len(connections) - self.max_connections] or [handler]:
            victim.force_close()


class GuardedAppRunner(web.AppRunner):
    """`web.AppRunner` serving through a `GuardedServer`."""

    def __init__(self, app: web.Application, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._max_connections = max_connections

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app; its handler settings come with it
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            max_connections=self._max_connections,
            **plain._kwargs,
        )


# -- serving ---------------------------------------------------------------------------------------------


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (desktops start programs at 1,024); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # an unlimited hard limit may be more than the kernel allows
            log.warning("cannot raise the open-file limit from %d to the hard limit: %s", soft, exc)
    return UNLIMITED_FILES if soft == resource.RLIM_INFINITY else soft


def connection_cap(config: Config, open_file_limit: int) -> int:
    """`max_connections`, lowered to stay below the open-file limit with room for the server's own files."""
    threads = FILES_PER_JOB_THREAD * config.threads + FILES_PER_REQUEST_THREAD * config.request_threads
    reserve = RESERVED_FILES + threads + ACCEPT_BURSTS * BACKLOG
    return max(1, min(config.max_connections, open_file_limit - reserve))


def serve(app: web.Application, config: Config, *, on_listening: Callable[[], None] | None = None) -> None:
    """Serve `app` until SIGINT or SIGTERM, then stop listening, shut down and clean up (jobs saved).

    `on_listening` runs once the socket listens (a startup line, say).
    """
    cap = connection_cap(config, raise_open_file_limit())
    sys.setswitchinterval(LOOP_SWITCH_INTERVAL_S)
    asyncio.run(_serve(app, config, cap, on_listening))


async def _serve(app: web.Application, config: Config, cap: int, on_listening: Callable[[], None] | None) -> None:
    runner = GuardedAppRunner(app, max_connections=cap, access_log=None, shutdown_timeout=8.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port, backlog=BACKLOG).start()
        log.info("serving on http://%s:%d (at most %d connections)", config.host, config.port, cap)
        if on_listening is not None:
            on_listening()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()
