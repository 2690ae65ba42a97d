"""Rate-limited logging of dropped connections (a flood of strangers writes a few lines,
not megabytes)."""

from __future__ import annotations

import collections
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .transport import TransportStatus

__all__ = ["DropLog", "log_drop"]

logger = logging.getLogger("gossipnode.wire")

# Drop log lines per kind of reason per interval; the rest are counted and summed up.
DROP_LOG_LINES_MAX = 5
DROP_LOG_INTERVAL_S = 10.0


class DropLog:
    """Rate-limited logging of dropped connections: per kind of reason (its text up to the
    first colon or parenthesis), the first `DROP_LOG_LINES_MAX` drops of each
    `DROP_LOG_INTERVAL_S` are logged, the rest counted and summed up in one line when the
    interval ends. A flood of strangers then writes a few lines, not megabytes."""

    def __init__(self) -> None:
        self._counts: collections.Counter[str] = collections.Counter()
        self._interval_start = time.monotonic()

    @staticmethod
    def kind(reason: str) -> str:
        return reason.split(":", 1)[0].split("(", 1)[0].strip()

    def log(self, peer: str, reason: str) -> None:
        now = time.monotonic()
        if now - self._interval_start >= DROP_LOG_INTERVAL_S:
            for kind, count in sorted(self._counts.items()):
                if count > DROP_LOG_LINES_MAX:
                    logger.warning(
                        "dropped %d more connections in %.0f s: %s",
                        count - DROP_LOG_LINES_MAX, now - self._interval_start, kind,
                    )
            self._counts.clear()
            self._interval_start = now
        kind = self.kind(reason)
        self._counts[kind] += 1
        if self._counts[kind] <= DROP_LOG_LINES_MAX:
            logger.warning("dropped connection %s: %s", peer, reason)


def log_drop(status: TransportStatus | None, peer: str, reason: str) -> None:
    """Log a dropped connection (rate-limited by the status's DropLog; every drop when no
    status is kept) and record it for `status`."""
    if status is None:
        logger.warning("dropped connection %s: %s", peer, reason)
        return
    status.drop_log.log(peer, reason)
    status.record_drop(peer, reason)
