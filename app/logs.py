"""The server's log: one formatted line per event, to stderr and Client_Data/logs/server.log."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from app.wallet.config import Config

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Control characters (a newline in a wallet folder's name) are shown escaped: one event, one line.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(32), 127)}


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.translate(_ESCAPES)
        return super().formatMessage(record)


def setup_logging(config: Config) -> None:
    config.logs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(
        config.logs_dir / "server.log", maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
    )
    formatter = OneLineFormatter(FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr), file_handler]
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=config.log_level.upper(), handlers=handlers, force=True)
    logging.captureWarnings(True)  # a library's warning is a formatted log line too, not a stray one
