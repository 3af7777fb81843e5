"""The log file's own rules: 0600, rolled over by size counted as lines are written, each line whole."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from app.logs import OneLineFormatter, PrivateLogFile


def make_logger(path: Path, max_bytes: int, *extra: logging.Handler) -> tuple[logging.Logger, PrivateLogFile]:
    handler = PrivateLogFile(path, maxBytes=max_bytes, backupCount=20, encoding="utf-8")
    formatter = OneLineFormatter("%(message)s")
    logger = logging.getLogger(f"test.logs.{path.name}.{max_bytes}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for h in (handler, *extra):
        h.setFormatter(formatter)
        logger.addHandler(h)
    return logger, handler


def written(path: Path) -> list[str]:
    """Every line of the log and its rolled-over files, oldest first."""
    files = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    return [line for f in [*files, path] for line in f.read_text(encoding="utf-8").splitlines()]


def test_rolls_over_by_size_without_losing_or_splitting_a_line(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    logger, handler = make_logger(path, 200)
    lines = [f"line {i:03d} " + "é" * (i % 7) + "x" * 20 for i in range(40)]
    for line in lines:
        logger.info(line)
    handler.close()
    assert written(path) == lines
    for f in [path, *path.parent.glob("server.log.*")]:
        assert f.stat().st_size < 200, f  # UTF-8 bytes counted, not characters
        assert f.stat().st_mode & 0o777 == 0o600


def test_the_size_of_a_file_already_there_counts(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    path.write_bytes(b"o" * 150 + b"\n")
    logger, handler = make_logger(path, 200)
    logger.info("y" * 60)  # 151 + 61 bytes would pass 200: a new file
    handler.close()
    assert path.read_text() == "y" * 60 + "\n"
    assert (tmp_path / "server.log.1").read_bytes() == b"o" * 150 + b"\n"


def test_a_log_that_is_no_regular_file_is_never_rolled(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        logger, handler = make_logger(path, 50)
        for _ in range(5):
            logger.info("z" * 30)
        handler.close()
        assert not list(tmp_path.glob("server.log.*"))
        assert os.read(reader, 1000) == (b"z" * 30 + b"\n") * 5
    finally:
        os.close(reader)


@pytest.mark.parametrize("handlers", [1, 2])
def test_a_record_is_formatted_once_whatever_writes_it(tmp_path: Path, handlers: int, monkeypatch) -> None:
    calls = []
    original = OneLineFormatter.formatMessage
    monkeypatch.setattr(OneLineFormatter, "formatMessage", lambda self, r: calls.append(r) or original(self, r))
    extra = [logging.StreamHandler(io.StringIO()) for _ in range(handlers - 1)]
    logger, handler = make_logger(tmp_path / "server.log", 1 << 20, *extra)
    logger.info("a line with a\nnewline")
    handler.close()
    assert len(calls) == 1
    assert (tmp_path / "server.log").read_text() == "a line with a\\x0anewline\n"
    for h in extra:
        assert h.stream.getvalue() == "a line with a\\x0anewline\n"
