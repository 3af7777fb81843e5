"""python -m app: parse flags, load the configuration, set up logging, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys

from app.main import create_app
from app.wallet.config import Config, load_config
from app.web.server import serve


class PrivateLogFile(logging.handlers.RotatingFileHandler):
    """The rotating log, each file 0600 (paths and job ids are the user's business), whatever the umask."""

    def _open(self) -> io.TextIOWrapper:
        # Always appending: with maxBytes set the handler never opens its file any other way.
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)  # a file an older version made 0644
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def setup_logging(config: Config) -> None:
    # Client_Data first, 0700: made as a parent of logs/ it would get the umask's 0755.
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config.logs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    file_handler = PrivateLogFile(
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
    # Until SIGINT or SIGTERM; then it stops listening and runs the shutdown and cleanup hooks (which
    # cancel running backups and save the job store) before returning.
    serve(create_app(config), config)


if __name__ == "__main__":
    main()
