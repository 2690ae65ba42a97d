"""Eager push of fresh writes: the messages and the sender's bookkeeping.

Rules:
1. A write is pushed at once to the peers that must hold it: for `all`-scope datasets to
   `push_fanout` random live peers, for private keys to eligible peers only, for a mailbox to
   its owners. A peer that stores a record it did not have forwards it the same way (an
   epidemic), so a write reaches most members within a few hops; anti-entropy repairs the rest.
2. Every push is acknowledged. `PushAck.refused` lists the records the receiver would not
   take (it may not hold them); every other record of the push it holds durably, at that
   version or a newer one, when it acknowledges.
3. An unacknowledged push is sent again after `push_retry_s`, at most `push_attempts_max`
   times; then it is forgotten and anti-entropy repairs what it carried. What is queued for one
   peer is bounded (`peer_queue_records_max`); a peer over it is disconnected and dropped from
   the push queue, since anti-entropy will repair it anyway.
4. Handoff rides on acks: a record that this node keeps only until others hold it (a mailbox
   written on, or moved away from, a non-owner) is released when every target acknowledged it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..config import RECORD_OVERHEAD_BYTES_MAX
from .records import Record

__all__ = ["PendingPush", "Push", "PushAck", "PushTracker", "chunk_records", "record_bytes"]

# A push is resent this often until acknowledged: a few LAN round trips plus a disk sync.
PUSH_RETRY_S = 2.0
# Attempts per push before anti-entropy is left to repair it (about 10 s of retries).
PUSH_ATTEMPTS_MAX = 5


def record_bytes(record: Record) -> int:
    """An upper bound on a record's encoded size inside a push."""
    value = len(record.value) if record.value is not None else 0
    return len(record.key.encode()) + value + RECORD_OVERHEAD_BYTES_MAX


def chunk_records(records: Sequence[Record], count_max: int,
                  bytes_max: int) -> Iterator[tuple[Record, ...]]:
    """Cut records, in order, into pushes of at most `count_max` records and `bytes_max`
    bytes (`record_bytes`). A record over `bytes_max` alone still travels alone: the
    configuration guarantees every record that fits `limits` fits a push (check_config)."""
    chunk: list[Record] = []
    size = 0
    for record in records:
        cost = record_bytes(record)
        if chunk and (len(chunk) >= count_max or size + cost > bytes_max):
            yield tuple(chunk)
            chunk, size = [], 0
        chunk.append(record)
        size += cost
    if chunk:
        yield tuple(chunk)


@dataclass(frozen=True, slots=True)
class Push:
    push_id: int
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class PushAck:
    push_id: int
    # Indices into Push.records of the records the receiver refused.
    refused: tuple[int, ...]


@dataclass(slots=True)
class PendingPush:
    peer: bytes
    push: Push
    due: float
    attempts: int = 1
    # Set when the acknowledgement releases a handoff: (dataset, key) pairs waiting for it.
    handoff: bool = False


@dataclass(slots=True)
class PushTracker:
    """Pushes sent and not yet acknowledged, by push id."""

    retry_s: float = PUSH_RETRY_S
    attempts_max: int = PUSH_ATTEMPTS_MAX
    queue_records_max: int = 10_000
    _next_id: int = 1
    _pending: dict[int, PendingPush] = field(default_factory=dict)
    _queued_records: dict[bytes, int] = field(default_factory=dict)

    def start(self, peer: bytes, records: tuple[Record, ...], now: float, *,
              handoff: bool = False) -> Push | None:
        """A new push to `peer`, or None when that peer's queue is full (drop the peer)."""
        queued = self._queued_records.get(peer, 0)
        if queued + len(records) > self.queue_records_max:
            return None
        push = Push(self._next_id, records)
        self._next_id += 1
        self._pending[push.push_id] = PendingPush(peer, push, now + self.retry_s, handoff=handoff)
        self._queued_records[peer] = queued + len(records)
        return push

    def acknowledge(self, peer: bytes, ack: PushAck) -> PendingPush | None:
        """The push `ack` answers, if it is ours and was sent to `peer`; else None."""
        pending = self._pending.get(ack.push_id)
        if pending is None or pending.peer != peer:
            return None
        self._forget(ack.push_id)
        return pending

    def due(self, now: float) -> tuple[list[PendingPush], list[PendingPush]]:
        """(pushes to send again, pushes given up), each removed or re-armed."""
        resend, given_up = [], []
        for push_id, pending in list(self._pending.items()):
            if pending.due > now:
                continue
            if pending.attempts >= self.attempts_max:
                self._forget(push_id)
                given_up.append(pending)
            else:
                pending.attempts += 1
                pending.due = now + self.retry_s
                resend.append(pending)
        return resend, given_up

    def drop_peer(self, peer: bytes) -> list[PendingPush]:
        """Forget every push to `peer` (disconnected, dead, or over its queue)."""
        dropped = [p for p in self._pending.values() if p.peer == peer]
        for pending in dropped:
            self._forget(pending.push.push_id)
        return dropped

    def next_deadline(self) -> float | None:
        return min((p.due for p in self._pending.values()), default=None)

    def handoff_pending(self, peer: bytes) -> bool:
        return any(p.handoff and p.peer == peer for p in self._pending.values())

    def pending_for(self, peer: bytes) -> int:
        return self._queued_records.get(peer, 0)

    def __len__(self) -> int:
        return len(self._pending)

    def _forget(self, push_id: int) -> None:
        pending = self._pending.pop(push_id)
        left = self._queued_records[pending.peer] - len(pending.push.records)
        if left:
            self._queued_records[pending.peer] = left
        else:
            del self._queued_records[pending.peer]
