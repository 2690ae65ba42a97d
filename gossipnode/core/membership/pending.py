"""Pending members: heard of, not yet confirmed. A small bounded set that costs the rest of
the node nothing.

Rules:
1. A member enters the table (and the node's view, and so placement and replication) only
   once it has spoken to us itself over a channel that proved its node id, and once the
   admission predicate says yes. Until then its latest signed alive statement waits here,
   with the member that told us of it (the source) and when.
2. Pending members are neither probed, gossiped to, nor passed on; the core sends each a
   few confirmation pings (rate-limited), whose acks confirm it.
3. At most `capacity` entries. A newcomer over it evicts the oldest entry of the source that
   holds the most: a flood (a push-pull full of self-signed identities) evicts its own
   entries, not those that honest members told us of.
4. An entry not confirmed within `expiry_s` is forgotten, so memory returns to its
   baseline after any flood.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass

from .messages import Alive

__all__ = ["Pending", "PendingMembers"]


@dataclass(slots=True)
class Pending:
    alive: Alive
    source: bytes
    since: float
    pinged_at: float | None = None


class PendingMembers:
    __slots__ = ("_by_source", "capacity", "entries", "expiry_s")

    def __init__(self, capacity: int, expiry_s: float) -> None:
        assert capacity >= 0 and expiry_s > 0
        self.capacity = capacity
        self.expiry_s = expiry_s
        # node id -> entry, oldest first.
        self.entries: OrderedDict[bytes, Pending] = OrderedDict()
        self._by_source: Counter[bytes] = Counter()

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, node_id: bytes) -> bool:
        return node_id in self.entries

    def get(self, node_id: bytes) -> Pending | None:
        return self.entries.get(node_id)

    def offer(self, alive: Alive, source: bytes, now: float) -> tuple[bool, bytes | None]:
        """Hold `alive` (already verified) for its subject. Returns (new, evicted): whether
        the subject was not pending before, and the node id evicted to make room."""
        current = self.entries.get(alive.node_id)
        if current is not None:
            if alive.incarnation > current.alive.incarnation:
                current.alive = alive
            return False, None
        if self.capacity == 0:
            return False, None
        evicted = None
        if len(self.entries) >= self.capacity:
            most = max(self._by_source.values())
            evicted = next(
                node_id
                for node_id, entry in self.entries.items()
                if self._by_source[entry.source] == most
            )
            self.pop(evicted)
        self.entries[alive.node_id] = Pending(alive, source, now)
        self._by_source[source] += 1
        return True, evicted

    def pop(self, node_id: bytes) -> Pending | None:
        entry = self.entries.pop(node_id, None)
        if entry is not None:
            self._by_source[entry.source] -= 1
            if not self._by_source[entry.source]:
                del self._by_source[entry.source]
        return entry

    def expire(self, now: float) -> int:
        """Forget entries older than `expiry_s`; returns how many."""
        expired = 0
        while self.entries:
            node_id, entry = next(iter(self.entries.items()))
            if entry.since + self.expiry_s > now:
                break
            self.pop(node_id)
            expired += 1
        return expired

    def due_pings(self, now: float, interval_s: float) -> list[Pending]:
        """Entries not pinged within `interval_s`, oldest first."""
        return [
            entry
            for entry in self.entries.values()
            if entry.pinged_at is None or entry.pinged_at + interval_s <= now
        ]
