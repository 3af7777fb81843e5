"""The server's log: one formatted line per event, to stderr and Client_Data/logs/server.log."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import stat
import sys

from app.wallet.config import Config

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Control characters (a newline in a wallet folder's name) are shown escaped: one event, one line.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(32), 127)}


class OneLineFormatter(logging.Formatter):
    """Control characters escaped; each record formatted once, however many handlers write it."""

    def format(self, record: logging.LogRecord) -> str:
        # Every handler (stderr and the file, whose rollover check formats too) asks for the line:
        # one request's log line was formatted three times, a fifth of what a health check costs.
        line: str | None = record.__dict__.get("_one_line")
        if line is None:
            line = record.__dict__["_one_line"] = super().format(record)
        return line

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.translate(_ESCAPES)
        return super().formatMessage(record)


class PrivateLogFile(logging.handlers.RotatingFileHandler):
    """The rotating log, each file 0600 (paths and job ids are the user's business), whatever the umask.

    The size is counted as lines are written instead of asked of the file system: the standard
    rollover check costs two `stat` calls and a seek per line, on the event loop, for every request.
    This server is the file's only writer (one server per data directory).
    """

    _size = 0
    _line_size = 0
    _regular = True

    def _open(self) -> io.TextIOWrapper:
        # Always appending: with maxBytes set the handler never opens its file any other way.
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)  # a file an older version made 0644
        st = os.fstat(fd)
        self._size, self._regular = st.st_size, stat.S_ISREG(st.st_mode)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.stream is None:
            self.stream = self._open()
        self._line_size = len(self.format(record).encode(self.encoding or "utf-8", "replace")) + 1
        if self._regular and self.maxBytes > 0 and self._size + self._line_size >= self.maxBytes:
            return True
        self._size += self._line_size
        return False

    def doRollover(self) -> None:
        super().doRollover()  # reopens: the size is the new file's
        self._size += self._line_size  # the line that did not fit goes there


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
    # No caller frame, thread or process looked up per record: the format names none of them.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.basicConfig(level=config.log_level.upper(), handlers=handlers, force=True)
    logging.captureWarnings(True)  # a library's warning is a formatted log line too, not a stray one
