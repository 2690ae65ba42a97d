"""What the transport counts: dropped connections and their reasons, and the bytes of every
frame and handshake (`TransportStatus`, rendered by `status` and `metrics`)."""

from __future__ import annotations

import collections
import time
import typing
from dataclasses import dataclass, field

from ..wire.channel import TAG_BYTES
from ..wire.framing import LENGTH_PREFIX_BYTES
from ..wire.handshake import NO_COMMON_VERSION, WRONG_SECRET
from .drops import DropLog

__all__ = [
    "DROP_TIMES_KEPT",
    "FRAME_OVERHEAD_BYTES",
    "RECENT_DROPS_MAX",
    "Drop",
    "TransportStatus",
    "attribute",
    "drop_kind",
    "message_label",
]

# Drop reasons kept for `status`: enough to see a pattern, bounded against floods.
RECENT_DROPS_MAX = 64
# Times kept per drop kind: enough to tell "keeps arriving" from "happened once".
DROP_TIMES_KEPT = 16
_DROP_KINDS = (
    (WRONG_SECRET, "wrong_secret"),
    (NO_COMMON_VERSION, "no_common_version"),
    ("handshake timeout", "handshake_timeout"),
    ("evicted", "evicted"),
    ("cannot connect", "cannot_connect"),
    ("handshake failed", "handshake_failed"),
    ("frame", "bad_frame"),
)
# What a frame adds to its payload on the wire: the length prefix and the channel's tag.
FRAME_OVERHEAD_BYTES = LENGTH_PREFIX_BYTES + TAG_BYTES


class Drop(typing.NamedTuple):
    """One dropped connection: who, why, and when (wall-clock seconds)."""

    peer: str
    reason: str
    at: float


@dataclass
class TransportStatus:
    """Counters and recent drop reasons of a listener (and of `connect` calls given it)."""

    accepted: int = 0
    authenticated: int = 0
    # Handshakes completed, dialled and accepted (`establish`): with the links' collision
    # counters, what mutual dials cost.
    handshakes_completed: int = 0
    handshakes_failed: int = 0
    evicted: int = 0
    timed_out: int = 0
    over_peer_limit: int = 0
    over_connection_limit: int = 0
    # Replayed hellos answered from the listener's reply cache (wire/handshake_cache.py).
    hello_replays: int = 0
    recent_drops: collections.deque[tuple[str, str]] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT_DROPS_MAX)
    )
    # The same drops with their time, newest last (status shows their age, and ages out).
    timed_drops: collections.deque[Drop] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT_DROPS_MAX)
    )
    # Drops since start by kind (`drop_kind`), and the times of the latest of each kind, so
    # that `health` sees wrong-secret refusals keep coming even among many other drops.
    drop_counts: collections.Counter[str] = field(default_factory=collections.Counter)
    drop_times: dict[str, collections.deque[float]] = field(default_factory=dict)
    drop_log: DropLog = field(default_factory=DropLog)
    # Bytes of partial frames buffered over all connections (BUFFERED_BYTES_MAX).
    buffered_bytes: int = 0
    over_buffer_budget: int = 0
    over_message_size: int = 0
    # Frame payload bytes of authenticated connections by `message_label`, for `metrics`:
    # a frame's bytes (bundled, compressed) are shared among its messages in proportion to
    # their encoded sizes. Each frame costs `FRAME_OVERHEAD_BYTES` more on the wire.
    bytes_sent: collections.Counter[str] = field(default_factory=collections.Counter)
    bytes_received: collections.Counter[str] = field(default_factory=collections.Counter)
    frames_sent: int = 0
    frames_received: int = 0
    # TCP payload of handshakes (frames included), both directions, completed or not.
    handshake_bytes: int = 0

    def record_drop(self, peer: str, reason: str) -> None:
        now = time.time()
        kind = drop_kind(reason)
        self.recent_drops.append((peer, reason))
        self.timed_drops.append(Drop(peer, reason, now))
        self.drop_counts[kind] += 1
        self.drop_times.setdefault(kind, collections.deque(maxlen=DROP_TIMES_KEPT)).append(now)


def drop_kind(reason: str) -> str:
    """A drop reason's kind, a short label for counting (and for metrics)."""
    for marker, kind in _DROP_KINDS:
        if marker in reason:
            return kind
    return "other"


def message_label(message: object) -> str:
    """The label a message's bytes are counted under: its type, and for a reconciliation
    turn whether it carries records, so that `metrics` tells record bytes from the ranges'
    (a turn sends its ranges first, then its records)."""
    name = type(message).__name__
    if name == "ReconcileTurn" and getattr(message, "records", ()):
        return "ReconcileTurn.records"
    return name


def attribute(counter: collections.Counter[str], total: int,
               shares: list[tuple[str, int]]) -> None:
    """Add `total` bytes to `counter`, split among labels by their shares' sizes."""
    weight = sum(size for _, size in shares) or 1
    given = 0
    for label, size in shares[:-1]:
        part = total * size // weight
        counter[label] += part
        given += part
    counter[shares[-1][0]] += total - given
