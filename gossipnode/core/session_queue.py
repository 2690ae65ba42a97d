"""Sessions waiting their turn: one moving session per dataset at a time (anti_entropy.py
rule 7).

After a partition heals, a member sees several peers of the other side return at once; each
of them holds much the same records it lacks. Reconciled with all of them at once, it is sent
the same records once per peer (three times over for a member of the 2 of a 2|3 split), and
every copy is fetched, sent, decoded, checked and applied. Reconciled with one after another,
the first session brings those records and the next ones find only what the peers of that side
hold apart. So a session over a dataset waits while another session over that dataset, with
another peer, runs:

1. A session this node would start (a round, an immediate round, a resumption) waits while
   any session over its dataset with another peer runs.
2. A peer's opening waits, unanswered, while a session over its dataset with another peer is
   *moving*: one this node answers, or one it opened that the peer answered. An opening never
   waits on a session that is itself only an unanswered opening, so no wait depends on another
   wait and no cycle of waits can form (A waits on B's session which waits on C's...): every
   wait is on a session that is exchanging turns, and turns never wait.
3. Waiting sessions go first in, first out per dataset, when the session they wait on ends,
   and at the latest `WAIT_S_MAX` after they began to wait (a session that moves a whole
   dataset must not hold the next one past the peer's stall timeout).
4. A peer has at most as many openings waiting and sessions running with us as
   `SESSIONS_PER_PEER_MAX` allows (counted by the caller), so the queue is bounded by the
   number of peers times datasets.

This module is the queue itself; core/staggering.py decides what enters it and when it goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .reconcile_messages import ReconcileOpen

__all__ = ["WAIT_S_MAX", "SessionQueue", "Waiting"]

# A waiting session starts at the latest this long after it began to wait (rule 3): well under
# reconcile.session_timeout_s (30 s), so the peer whose opening waits never sees its session
# stall, and long enough for the session waited on to move a few thousand records on a busy
# host.
WAIT_S_MAX = 10.0


@dataclass(slots=True)
class Waiting:
    peer: bytes
    dataset: str
    since: float
    opening: ReconcileOpen | None  # the peer's opening to answer; None: a session to start
    withdrawals: int = 0  # ours: times it was withdrawn already (staggering.py rule 3)


class SessionQueue:
    """Sessions waiting for their dataset to be free, oldest first."""

    def __init__(self) -> None:
        self._waiting: list[Waiting] = []

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, waiting: Waiting) -> None:
        self._waiting.append(waiting)

    def datasets(self, peer: bytes) -> set[str]:
        """The datasets of the sessions with `peer` waiting here (either end's)."""
        return {w.dataset for w in self._waiting if w.peer == peer}

    def count(self, peer: bytes, *, openings: bool | None = None) -> int:
        """Sessions with `peer` waiting here (only the peer's openings, or only ours to
        start, if asked)."""
        return sum(1 for w in self._waiting if w.peer == peer
                   and (openings is None or (w.opening is not None) == openings))

    def holds(self, peer: bytes, session: int) -> bool:
        """Does the peer's opening of this session wait here?"""
        return any(w.peer == peer and w.opening is not None and w.opening.session == session
                   for w in self._waiting)

    def clear(self) -> list[Waiting]:
        """Remove and return every waiting session."""
        gone, self._waiting = self._waiting, []
        return gone

    def discard(self, peer: bytes, *, session: int | None = None, dataset: str | None = None,
                openings: bool = True, starts: bool = True) -> list[Waiting]:
        """Remove and return the waiting sessions with `peer` that match."""
        def matches(w: Waiting) -> bool:
            if w.peer != peer or (dataset is not None and w.dataset != dataset):
                return False
            if w.opening is None:
                return starts and session is None
            return openings and (session is None or w.opening.session == session)

        gone = [w for w in self._waiting if matches(w)]
        if gone:
            self._waiting = [w for w in self._waiting if not matches(w)]
        return gone

    def due(self, busy: Callable[[Waiting], bool], now: float) -> Waiting | None:
        """Remove and return the oldest waiting session that may go now (its dataset is free,
        or it waited `WAIT_S_MAX`), or None."""
        held: set[str] = set()  # datasets an older waiting session still holds
        for index, waiting in enumerate(self._waiting):
            overdue = now - waiting.since >= WAIT_S_MAX
            if overdue or (waiting.dataset not in held and not busy(waiting)):
                return self._waiting.pop(index)
            held.add(waiting.dataset)
        return None

    def next_deadline(self) -> float | None:
        """When the oldest waiting session goes whatever it waits on (rule 3), or None."""
        if not self._waiting:
            return None
        return min(w.since for w in self._waiting) + WAIT_S_MAX
