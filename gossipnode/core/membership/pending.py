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

from collections import OrderedDict
from dataclasses import dataclass

from .messages import Alive

__all__ = ["Pending", "PendingMembers"]

# An eviction compares the oldest entries of the sources that hold the most when there are
# at most this many of them; with more, it walks the entries oldest first, and since those
# sources then hold a large part of the set, it meets one of theirs within a few steps.
TIED_SOURCES_COMPARED_MAX = 8


@dataclass(slots=True)
class Pending:
    alive: Alive
    source: bytes
    since: float
    pinged_at: float | None = None


class PendingMembers:
    __slots__ = ("_by_count", "_by_source", "_most", "_sequence", "capacity", "entries",
                 "expiry_s")

    def __init__(self, capacity: int, expiry_s: float) -> None:
        assert capacity >= 0 and expiry_s > 0
        self.capacity = capacity
        self.expiry_s = expiry_s
        # node id -> entry, oldest first.
        self.entries: OrderedDict[bytes, Pending] = OrderedDict()
        # Per source, its entries' node ids, oldest first, each with its place in
        # `entries` (an increasing number); the sources by how many entries they hold, and
        # the largest such count. An eviction (rule 3) then looks only at the sources that
        # hold the most, not at every source or entry: a joiner told of a thousand members
        # evicts hundreds of times, and each eviction scanned the whole set.
        self._by_source: dict[bytes, OrderedDict[bytes, int]] = {}
        self._by_count: dict[int, dict[bytes, None]] = {}
        self._most = 0
        self._sequence = 0

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
            evicted = self._oldest_of_largest_source()
            self.pop(evicted)
        self.entries[alive.node_id] = Pending(alive, source, now)
        self._sequence += 1
        held = self._by_source.setdefault(source, OrderedDict())
        self._recount(source, len(held), len(held) + 1)
        held[alive.node_id] = self._sequence
        return True, evicted

    def _oldest_of_largest_source(self) -> bytes:
        """Rule 3: of the sources holding the most entries, the oldest entry."""
        most, tied = self._most, self._by_count[self._most]
        if len(tied) > TIED_SOURCES_COMPARED_MAX:
            # Many sources hold the most: their entries are common, the oldest is near.
            return next(node_id for node_id, entry in self.entries.items()
                        if len(self._by_source[entry.source]) == most)
        oldest = min((next(iter(self._by_source[source].items())) for source in tied),
                     key=lambda item: item[1])
        return oldest[0]

    def _recount(self, source: bytes, before: int, after: int) -> None:
        """`source` now holds `after` entries, not `before`: move it between the counts."""
        if before:
            sources = self._by_count[before]
            del sources[source]
            if not sources:
                del self._by_count[before]
                if self._most == before:
                    self._most = after  # counts change by one: after is the new largest
        if after:
            self._by_count.setdefault(after, {})[source] = None
            self._most = max(self._most, after)

    def pop(self, node_id: bytes) -> Pending | None:
        entry = self.entries.pop(node_id, None)
        if entry is not None:
            held = self._by_source[entry.source]
            self._recount(entry.source, len(held), len(held) - 1)
            del held[node_id]
            if not held:
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
