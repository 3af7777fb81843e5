"""create_app(config): the table of contents of the server — resources, middlewares, routes."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from app.wallet.config import MAX_BODY_BYTES, Config
from app.wallet.keyring import KeyRing
from app.wallet.wallets import WalletService
from app.web import jobhttp, plans
from app.web.middleware import add_response_headers, error_middleware, security_middleware
from app.web.routes import add_routes
from app.web.state import (
    config_key,
    executor_key,
    keyring_key,
    run_blocking,
    started_key,
    wallet_moves_key,
    wallets_key,
)
from jobs import rename

log = logging.getLogger(__name__)

#: Request line and header size limit (aiohttp's default is 8 KB): as much as a body may hold, so
#: that long parameters reach the parameter checks (a JSON 400) rather than aiohttp's plain-text one.
MAX_REQUEST_LINE = 1024 * 1024


def create_app(config: Config) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[error_middleware, security_middleware(config)],
        handler_args={"max_line_size": MAX_REQUEST_LINE, "max_field_size": MAX_REQUEST_LINE},
    )
    app[config_key] = config
    app[started_key] = time.monotonic()
    app[keyring_key] = KeyRing()
    app.cleanup_ctx.append(_executor)
    app.cleanup_ctx.append(_wallets)
    plans.setup_service(app)
    jobhttp.setup(app)
    plans.setup_scheduler(app)
    app.on_response_prepare.append(add_response_headers)
    add_routes(app)
    return app


def blocking_runner(app: web.Application) -> Callable[..., Any]:
    """`await run(fn, *args, **kwargs)` on the app's own thread pool, for services that hold no app."""
    return functools.partial(run_blocking, app)


async def _executor(app: web.Application) -> AsyncIterator[None]:
    executor = ThreadPoolExecutor(max_workers=app[config_key].threads, thread_name_prefix="cloudcoin")
    app[executor_key] = executor
    yield
    executor.shutdown(wait=True, cancel_futures=True)


async def _wallets(app: web.Application) -> AsyncIterator[None]:
    service = WalletService(app[config_key], run_blocking=blocking_runner(app))
    # A rename that a crash interrupted is settled first, before the Default wallet is checked and
    # before any job can touch that wallet (jobs.md): folder and registry agree again.
    moves: list[tuple[str, str]] = []
    for line in await blocking_runner(app)(rename.settle_journal, app[config_key], moves):
        log.warning("rename journal: %s", line)
    app[wallet_moves_key] = moves  # backup plans follow these once they are loaded
    await blocking_runner(app)(service.prepare_data_dir)
    app[wallets_key] = service
    yield
