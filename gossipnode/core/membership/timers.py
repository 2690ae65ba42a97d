"""Deadlines by key, for a core that reports `next_deadline()` and is driven by
`handle_timer(now)`.

Setting a key again moves its deadline; cancelling forgets it. A heap holds every deadline
ever set and stale entries are skipped lazily, so set, cancel and next are O(log n)
amortized however many suspicion and relay timers are pending.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from heapq import heappop, heappush

__all__ = ["IndexedSet", "Timers"]


class Timers:
    __slots__ = ("_due", "_heap", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, float] = {}
        # Ties break by insertion order, so that runs are deterministic.
        self._order = itertools.count()

    def set(self, key: Hashable, at: float) -> None:
        self._due[key] = at
        heappush(self._heap, (at, next(self._order), key))

    def cancel(self, key: Hashable) -> None:
        self._due.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._due

    def next(self) -> float | None:
        heap, due = self._heap, self._due
        while heap:
            at, _, key = heap[0]
            if due.get(key) == at:
                return at
            heappop(heap)
        return None

    def pop_due(self, now: float) -> list[Hashable]:
        """The keys due at `now`, earliest first; they are forgotten."""
        due = []
        heap, deadlines = self._heap, self._due
        while heap and heap[0][0] <= now:
            at, _, key = heappop(heap)
            if deadlines.get(key) == at:
                del deadlines[key]
                due.append(key)
        return due


class IndexedSet:
    """A set that can also pick random members in O(k): a list plus each item's index."""

    __slots__ = ("_index", "items")

    def __init__(self) -> None:
        self.items: list[bytes] = []
        self._index: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: bytes) -> bool:
        return item in self._index

    def add(self, item: bytes) -> None:
        if item not in self._index:
            self._index[item] = len(self.items)
            self.items.append(item)

    def discard(self, item: bytes) -> None:
        index = self._index.pop(item, None)
        if index is None:
            return
        last = self.items.pop()
        if index < len(self.items):
            self.items[index] = last
            self._index[last] = index
