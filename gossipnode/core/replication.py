"""Eager push of fresh writes: the messages and the sender's bookkeeping.

Rules:
1. A write is pushed at once to the peers that must hold it: for `all`-scope datasets to
   `push_fanout` random live peers, for private keys to eligible peers only, for a mailbox to
   its owners. A peer that stores a record it did not have forwards it the same way (an
   epidemic), so a write reaches most members within a few hops; anti-entropy repairs the rest.
   It does not forward a record it got, unchanged, from the record's origin when the
   origin's own push reached every member that must hold it (a mailbox's owners; at most
   `push_fanout` members besides the origin): each of them got it already, and in a small
   cluster forwarding would double every write's work on every member.
   An administrative record is pushed to its subject besides the fan-out, by its writer and by
   every member that forwards it (core/scopes.py rule 5): the member a revocation names, which
   its peers send nothing else, learns it though a push or two are lost.
2. Every push is acknowledged. `PushAck.refused` lists the records the receiver would not
   take (it may not hold them); every other record of the push it holds durably, at that
   version or a newer one, when it acknowledges.
3. An unacknowledged push is sent again after `push_retry_s`, at most `push_attempts_max`
   times; then it is forgotten and anti-entropy repairs what it carried. A retry to a peer
   takes every push still unacknowledged by it along, merged into full pushes: after a
   partition heals, the writes of its last seconds reach the peer in a few messages, not
   one per write (hundreds at once overflowed the link and cut the sessions on it). What is
   queued for one peer is bounded (`peer_queue_records_max`); a peer over it is disconnected
   and dropped from the push queue, since anti-entropy will repair it anyway.
4. Handoff rides on acks: a record that this node keeps only until others hold it (a mailbox
   written on, or moved away from, a non-owner) is released when every target acknowledged it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..config import RECORD_OVERHEAD_BYTES_MAX
from .catalog import Scope
from .catalog import dataset as lookup_dataset
from .context import NodeContext
from .lifecycle import Lifecycle
from .membership.timers import Timers
from .records import Record
from .scopes import PRIVATE_KEYS, WEB_MESSENGER

__all__ = ["PendingPush", "Push", "PushAck", "PushTracker", "Replication", "chunk_records",
           "record_bytes"]

# A push is resent this often until acknowledged: a few LAN round trips plus a disk sync.
PUSH_RETRY_S = 2.0
# Attempts per push before anti-entropy is left to repair it (about 10 s of retries).
PUSH_ATTEMPTS_MAX = 5
# Records per push message: fresh writes come one by one, a forward batches a few.
PUSH_RECORDS_MAX = 64
HANDED_OFF_DATASETS = frozenset({PRIVATE_KEYS, WEB_MESSENGER})
# The node's timer key of one push: ("push", push_id).
PUSH_TIMER = "push"


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


class PushTracker:
    """Pushes sent and not yet acknowledged, by push id; each one's retry is a key in the
    node's timers."""

    def __init__(self, timers: Timers, *, queue_records_max: int = 10_000,
                 retry_s: float = PUSH_RETRY_S, attempts_max: int = PUSH_ATTEMPTS_MAX) -> None:
        self._timers = timers
        self.retry_s = retry_s
        self.attempts_max = attempts_max
        self.queue_records_max = queue_records_max
        self._next_id = 1
        self._pending: dict[int, PendingPush] = {}
        self._queued_records: dict[bytes, int] = {}

    def start(self, peer: bytes, records: tuple[Record, ...], now: float, *,
              handoff: bool = False, attempts: int = 1) -> Push | None:
        """A new push to `peer`, or None when that peer's queue is full (drop the peer).
        `attempts`: sends so far of the records it carries (a merged retry's)."""
        queued = self._queued_records.get(peer, 0)
        if queued + len(records) > self.queue_records_max:
            return None
        push = Push(self._next_id, records)
        self._next_id += 1
        pending = PendingPush(peer, push, now + self.retry_s, attempts, handoff)
        self._pending[push.push_id] = pending
        self._timers.set((PUSH_TIMER, push.push_id), pending.due)
        self._queued_records[peer] = queued + len(records)
        return push

    def acknowledge(self, peer: bytes, ack: PushAck) -> PendingPush | None:
        """The push `ack` answers, if it is ours and was sent to `peer`; else None."""
        pending = self._pending.get(ack.push_id)
        if pending is None or pending.peer != peer:
            return None
        self._forget(ack.push_id)
        return pending

    def due(self, push_ids: Iterable[int],
            now: float) -> tuple[list[PendingPush], list[PendingPush]]:
        """The pushes whose timers fell due: (to send again, given up), each re-armed or
        removed. In the order they were started, so that runs are deterministic."""
        resend, given_up = [], []
        for push_id in sorted(push_ids):
            pending = self._pending.get(push_id)
            if pending is None:
                continue
            if pending.attempts >= self.attempts_max:
                self._forget(push_id)
                given_up.append(pending)
            else:
                pending.attempts += 1
                pending.due = now + self.retry_s
                self._timers.set((PUSH_TIMER, push_id), pending.due)
                resend.append(pending)
        return resend, given_up

    def waiting(self, peer: bytes, *, handoff: bool) -> list[PendingPush]:
        """Every push to `peer` of that kind not yet acknowledged, oldest first."""
        return [p for p in self._pending.values() if p.peer == peer and p.handoff == handoff]

    def forget(self, push_id: int) -> None:
        """Stop waiting for this push's acknowledgement (its records travel in another)."""
        self._forget(push_id)

    def drop_peer(self, peer: bytes) -> list[PendingPush]:
        """Forget every push to `peer` (disconnected, dead, or over its queue)."""
        dropped = [p for p in self._pending.values() if p.peer == peer]
        for pending in dropped:
            self._forget(pending.push.push_id)
        return dropped

    def handoff_pending(self, peer: bytes) -> bool:
        return any(p.handoff and p.peer == peer for p in self._pending.values())

    def pending_for(self, peer: bytes) -> int:
        return self._queued_records.get(peer, 0)

    def __len__(self) -> int:
        return len(self._pending)

    def _forget(self, push_id: int) -> None:
        pending = self._pending.pop(push_id)
        self._timers.cancel((PUSH_TIMER, push_id))
        left = self._queued_records[pending.peer] - len(pending.push.records)
        if left:
            self._queued_records[pending.peer] = left
        else:
            del self._queued_records[pending.peer]


class Replication:
    """Eager push (rules 1 to 3): fan-out of fresh records, retries, overflow, and the
    acknowledgements that handoff waits for."""

    def __init__(self, ctx: NodeContext, lifecycle: Lifecycle) -> None:
        self._ctx = ctx
        self._lifecycle = lifecycle
        self.pushes = PushTracker(
            ctx.timers, queue_records_max=ctx.config.replication.peer_queue_records_max
        )

    def push(self, records: list[Record], exclude: bytes | None, now: float, *,
             received: Sequence[Record] = ()) -> None:
        """Send fresh records to the peers that must hold them (bounded fan-out).
        `exclude`: the peer the records came from, `received`: the records as it sent them
        (rule 1: what its origin already pushed to everyone is not forwarded)."""
        ctx = self._ctx
        if not records or self._lifecycle.quarantined():
            return
        view = ctx.view
        by_peer: dict[bytes, list[Record]] = {}
        fanout = ctx.config.replication.push_fanout
        rng: random.Random = ctx.rng
        as_sent = {(r.dataset, r.key): r for r in received}
        for record in records:
            if record.dataset == WEB_MESSENGER and not view.policy.wep_replication:
                continue
            holders = view.push_targets(record.dataset, record.key)
            placed = lookup_dataset(record.dataset).scope is Scope.WEP_PLACEMENT
            excluded = int(exclude is not None and exclude in holders)
            if (exclude is not None and record.version.origin == exclude
                    and as_sent.get((record.dataset, record.key)) == record
                    and (placed or len(holders) - excluded < fanout)):
                continue  # the origin reached them all (its targets: ours + us - it)
            if placed:
                targets = [t for t in holders if t != exclude]
            else:
                targets = _draw(rng, holders, exclude, fanout, excluded)
                subject = view.subject_peer(record.dataset, record.key)
                if subject is not None and subject != exclude and subject not in targets:
                    targets.append(subject)  # scopes.py rule 5: it learns what changed
            for target in targets:
                by_peer.setdefault(target, []).append(record)
        for peer, batch in sorted(by_peer.items()):
            self.start(peer, batch, now)

    def start(self, peer: bytes, records: list[Record], now: float, *,
              handoff: bool = False, attempts: int = 1) -> None:
        """Push `records` to `peer` in messages of at most PUSH_RECORDS_MAX records and
        `wire.push_bytes_max` bytes (large records must not make a push over a frame)."""
        budget = self._ctx.config.wire.push_bytes_max
        for chunk in chunk_records(records, PUSH_RECORDS_MAX, budget):
            push = self.pushes.start(peer, chunk, now, handoff=handoff, attempts=attempts)
            if push is None:
                self._overflow(peer)
                return
            self._ctx.send(peer, push)

    def _overflow(self, peer: bytes) -> None:
        """A peer that cannot keep up: drop its queue; anti-entropy repairs it later."""
        self.pushes.drop_peer(peer)
        self._ctx.counters["peers_dropped_overflow"] += 1
        self._ctx.disconnect(peer, "push queue overflow")

    def timers_due(self, push_ids: Iterable[int], now: float) -> None:
        resend, given_up = self.pushes.due(push_ids, now)
        self._ctx.counters["pushes_given_up"] += len(given_up)
        for peer, handoff in sorted({(p.peer, p.handoff) for p in resend}):
            waiting = self.pushes.waiting(peer, handoff=handoff)
            if len(waiting) == 1:  # alone: sent again as it was
                self._ctx.send(peer, waiting[0].push)
                continue
            for pending in waiting:  # merged (rule 3)
                self.pushes.forget(pending.push.push_id)
            records = [record for pending in waiting for record in pending.push.records]
            self.start(peer, records, now, handoff=handoff,
                       attempts=max(pending.attempts for pending in waiting))

    def acknowledged(self, sender: bytes, ack: PushAck) -> tuple[list[Record], list[Record]]:
        """Take a PushAck; return the handed-off kind of records it proves `sender` holds
        (any acknowledged push counts towards a handoff, whether it was sent as a handoff or
        as a fresh write), and the records `sender` refused."""
        pending = self.pushes.acknowledge(sender, ack)
        if pending is None:
            return [], []
        records = pending.push.records
        for index in ack.refused:
            if 0 <= index < len(records):
                self._ctx.withheld[(sender, records[index].dataset)] += 1
        refused = set(ack.refused)
        held = [record for index, record in enumerate(records)
                if index not in refused and record.dataset in HANDED_OFF_DATASETS]
        return held, [records[index] for index in sorted(refused) if 0 <= index < len(records)]


def _draw(rng: random.Random, holders: Sequence[bytes], exclude: bytes | None, fanout: int,
          excluded: int) -> list[bytes]:
    """`fanout` of `holders` other than `exclude` (`excluded`: 1 if it is among them),
    drawn uniformly by index: O(fanout), not a copy of every holder per record. One more
    is drawn when `exclude` is among them: dropping it (or else the last) leaves a uniform
    draw from the others."""
    wanted = min(fanout, len(holders) - excluded)
    drawn = rng.sample(range(len(holders)), min(len(holders), wanted + excluded))
    return [holders[i] for i in drawn if holders[i] != exclude][:wanted]
