"""The server's log: one formatted line per event, to stderr and Client_Data/logs/server.log."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys

from app.wallet.config import Config

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Control characters (a newline in a wallet folder's name) are shown escaped: one event, one line.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(32), 127)}


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.translate(_ESCAPES)
        return super().formatMessage(record)


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
    formatter = OneLineFormatter(FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr), file_handler]
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=config.log_level.upper(), handlers=handlers, force=True)
    logging.captureWarnings(True)  # a library's warning is a formatted log line too, not a stray one
