"""python -m app: parse flags, load the configuration, set up logging, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from app import __version__
from app.logs import setup_logging
from app.main import create_app
from app.wallet.config import MAX_BODY_BYTES, Config, load_config

log = logging.getLogger("app")


def startup_line(config: Config) -> str:
    host = f"[{config.host}]" if ":" in config.host else config.host
    return (
        f"CloudCoin Wallet Server {__version__} serving http://{host}:{config.port} with data in {config.data_dir}; "
        f"workers {config.workers}, threads {config.threads}, max queued {config.max_queued}, "
        f"bodies up to {MAX_BODY_BYTES / 1024**2:g} MiB, token {'required' if config.api_token else 'not required'}, "
        f"log level {config.log_level.upper()}"
    )


def main(argv: list[str] | None = None) -> None:
    config = load_config(argv)
    setup_logging(config)
    started = time.monotonic()
    # aiohttp's run_app handles SIGINT and SIGTERM: it stops listening, then runs the shutdown and
    # cleanup hooks (which cancel running backups and save the job store) before returning. Its
    # "Running on" banner is replaced by the startup line, written once the socket is listening.
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        shutdown_timeout=8.0,
        print=lambda _banner: log.info("%s", startup_line(config)),
        access_log=None,
    )
    log.info("CloudCoin Wallet Server stopped after %.1f s", time.monotonic() - started)


if __name__ == "__main__":
    main()
