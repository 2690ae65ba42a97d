"""Logging for the agent: text or one JSON object per line on stderr, plus a bounded
in-memory tail that `gossipnode monitor` streams from."""

from __future__ import annotations

import collections
import json
import logging
import sys
import time

from ..core.membership.members import escape_text

__all__ = ["LogTail", "setup_logging"]

# Lines kept for `monitor` clients that connect late; bounded so a chatty node stays small.
TAIL_LINES_MAX = 1000


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, sort_keys=True)


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        # One event, one line: what peers sent (names, reasons) cannot forge lines or move
        # the terminal's cursor. (JSON lines are escaped by json.dumps.)
        record.message = escape_text(record.message)
        return super().formatMessage(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = time.gmtime(record.created)
        return time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{int(record.msecs):03d}Z"


class LogTail(logging.Handler):
    """Keeps the last lines and a sequence number, so monitors can follow along."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: collections.deque[tuple[int, str]] = collections.deque(maxlen=TAIL_LINES_MAX)
        self.sequence = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.sequence += 1
        self.lines.append((self.sequence, self.format(record)))

    def since(self, sequence: int) -> list[tuple[int, str]]:
        return [(number, line) for number, line in self.lines if number > sequence]


def setup_logging(log_format: str, level: str = "info") -> LogTail:
    """Log to stderr and into a tail; `level` is a config log_level (debug...error)."""
    formatter: logging.Formatter = _JsonFormatter() if log_format == "json" else _TextFormatter()
    root = logging.getLogger("gossipnode")
    root.setLevel(level.upper())
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(formatter)
    root.addHandler(stderr)
    tail = LogTail()
    tail.setFormatter(formatter)
    root.addHandler(tail)
    return tail
