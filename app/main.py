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
from app.wallet.logins import LoginGate
from app.wallet.wallets import WalletService
from app.web import jobhttp, plans
from app.web.accesslog import request_log
from app.web.middleware import add_response_headers, error_middleware, security_middleware
from app.web.routes import add_routes
from app.web.server import handler_args
from app.web.state import (
    config_key,
    executor_key,
    job_executor_key,
    keyring_key,
    login_gate_key,
    run_blocking,
    started_key,
    wallet_moves_key,
    wallets_key,
)
from jobs import rename

log = logging.getLogger(__name__)


def create_app(config: Config) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[request_log, error_middleware, security_middleware(config)],
        handler_args=handler_args(config),
    )
    app[config_key] = config
    app[started_key] = time.monotonic()
    app[keyring_key] = KeyRing()
    app[login_gate_key] = LoginGate()
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
    """Two pools: the jobs' (a backup holds a thread for its whole run) and the requests' own, so that
    listing, balances and the checks before a job never queue behind archive work."""
    config = app[config_key]
    requests = ThreadPoolExecutor(max_workers=config.request_threads, thread_name_prefix="cloudcoin-request")
    jobs = ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="cloudcoin-job")
    app[executor_key] = requests
    app[job_executor_key] = jobs
    yield
    jobs.shutdown(wait=True, cancel_futures=True)
    requests.shutdown(wait=True, cancel_futures=True)


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
