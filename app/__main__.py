"""python -m app: parse flags, load the configuration, set up logging, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import time

from app import __version__
from app.logs import setup_logging
from app.main import create_app
from app.wallet.config import MAX_BODY_BYTES, Config, load_config
from app.web.server import serve

log = logging.getLogger("app")


def startup_line(config: Config) -> str:
    host = f"[{config.host}]" if ":" in config.host else config.host
    return (
        f"CloudCoin Wallet Server {__version__} serving http://{host}:{config.port} with data in {config.data_dir}; "
        f"workers {config.workers}, threads {config.threads}, max queued {config.max_queued}, "
        f"request threads {config.request_threads}, "
        f"bodies up to {MAX_BODY_BYTES / 1024**2:g} MiB, token {'required' if config.api_token else 'not required'}, "
        f"log level {config.log_level.upper()}"
    )


def main(argv: list[str] | None = None) -> None:
    config = load_config(argv)
    setup_logging(config)
    started = time.monotonic()
    # Until SIGINT or SIGTERM; then it stops listening and runs the shutdown and cleanup hooks (which
    # cancel running backups and save the job store) before returning. The startup line is written
    # once the socket listens.
    serve(create_app(config), config, on_listening=lambda: log.info("%s", startup_line(config)))
    log.info("CloudCoin Wallet Server stopped after %.1f s", time.monotonic() - started)


if __name__ == "__main__":
    main()
