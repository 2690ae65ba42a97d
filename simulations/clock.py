"""Virtual time and the one event queue that orders everything in a simulation.

Rules:
1. Nothing in a simulation reads a real clock. Virtual time only moves when the queue
   hands out the next event, so a run of a thousand virtual seconds takes as long as its
   events take to process, and the same seed replays the same run.
2. Events are ordered by (time, sequence number). The sequence number is handed out in
   push order, so two events due at the same instant run in the order they were
   scheduled: ties never depend on hashing, ids or memory addresses.
3. Events are never removed from the heap. A cancelled event (a timer that was re-armed,
   a message to a node that crashed) stays queued and is recognised as stale by its
   consumer when it comes up: cheaper than searching the heap.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any

__all__ = ["EPOCH_S", "EventQueue"]

# Virtual time starts at a realistic Unix time (2025-06-15), so that hybrid-clock stamps,
# tombstone ages and anything else derived from wall time look like production values.
EPOCH_S = 1_750_000_000.0


class EventQueue:
    """A min-heap of (time, sequence, kind, payload) and the current virtual time."""

    def __init__(self, start_s: float = EPOCH_S) -> None:
        self.now = start_s
        self._heap: list[tuple[float, int, str, Any]] = []
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at_s: float, kind: str, payload: Any) -> None:
        """Schedule an event; one in the past runs at the current time, never earlier."""
        self._sequence += 1
        now = self.now
        heappush(self._heap, (at_s if at_s >= now else now, self._sequence, kind, payload))

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop(self) -> tuple[str, Any]:
        """Remove the earliest event and advance virtual time to it."""
        at_s, _, kind, payload = heappop(self._heap)
        assert at_s >= self.now, (at_s, self.now)
        self.now = at_s
        return kind, payload

    def advance_to(self, at_s: float) -> None:
        """Move virtual time forward with no event (the end of a `run_for`)."""
        assert at_s >= self.now, (at_s, self.now)
        assert not self._heap or self._heap[0][0] >= at_s
        self.now = at_s
