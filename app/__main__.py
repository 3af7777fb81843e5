"""python -m app: parse flags, load the configuration, set up logging, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from aiohttp import web

from app.main import create_app
from app.wallet.config import Config, load_config


def setup_logging(config: Config) -> None:
    config.logs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(
        config.logs_dir / "server.log", maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
    )
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(sys.stderr), file_handler],
    )


def main(argv: list[str] | None = None) -> None:
    config = load_config(argv)
    setup_logging(config)
    logging.getLogger(__name__).info("data directory: %s", config.data_dir)
    # aiohttp's run_app handles SIGINT and SIGTERM: it stops listening, then runs the shutdown and
    # cleanup hooks (which cancel running backups and save the job store) before returning.
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        shutdown_timeout=8.0,
        print=lambda text: logging.getLogger(__name__).info(text.strip()),
        access_log=None,
    )


if __name__ == "__main__":
    main()
