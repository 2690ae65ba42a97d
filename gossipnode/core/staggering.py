"""The staggering of reconciliation sessions (anti_entropy.py rules 7 and 8): which session
waits for which, which of two crossed openings stands, and which session of ours gives way.

1. A session the scheduler starts waits while a session over its dataset with another peer
   runs (`wait_to_start`; session_queue.py rule 1).
2. A peer's opening that would move records waits, unanswered, while a session over its
   dataset with another peer is moving (`wait_to_answer`; session_queue.py rule 2). One whose
   root equals ours is answered at once: one round trip, nothing to wait for.
3. Before we answer a peer's opening that moves records, the sessions over its dataset that we
   started staggered with other peers and that are not answered yet are withdrawn (an abort
   with WITHDRAWN) and wait their turn again (`withdraw`): each at most WITHDRAWALS_MAX times,
   so that no chain of withdrawals and reopenings runs for ever.
4. Two openings over one dataset that cross (`cross`): the session opened by the lower node
   id stands. A waiting session of ours to `peer` over the dataset is dropped either way: the
   peer's session covers it.
5. What waits goes first in, first out when its dataset is free, and at the latest WAIT_S_MAX
   after it began to wait (`due`; session_queue.py rule 3); the node's timer WAIT_TIMER is set
   for that latest start (`arm`). A session of ours that goes is opened then, whatever runs
   by then: it is not queued again (else a peer that keeps a session over the dataset open
   would hold it for ever), and it keeps its count of withdrawals (rule 3).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from .context import NodeContext
from .reconcile_messages import ReconcileAbort, ReconcileOpen
from .session_queue import SessionQueue, Waiting
from .session_table import Running

__all__ = ["CROSSED", "WAIT_TIMER", "WITHDRAWALS_MAX", "WITHDRAWN", "Staggering"]

# The node's timer key of the latest start of the waiting sessions (rule 5).
WAIT_TIMER = "session_wait"
# Why the higher end's crossed session is abandoned (rule 4).
CROSSED = "crossed: the session opened by the lower node id stands"
# Why an unanswered session of ours is given up for a peer's (rule 3); it is opened again
# once that one ends.
WITHDRAWN = "withdrawn: waits for another session over the dataset"
# Times one session of ours may be withdrawn (rule 3): each time it waits for a session that
# moves records; bounded, so that no chain of withdrawals and reopenings can run for ever.
WITHDRAWALS_MAX = 3

Sessions = dict[tuple[bytes, int], Running]
# Ends a running session without an answer: (peer, session id, reason).
Abandon = Callable[[bytes, int, str], None]


def elsewhere(sessions: Sessions, peer: bytes, dataset: str, *, moving_only: bool) -> bool:
    """Does a session over `dataset` with another peer than `peer` run (only a moving one,
    if asked)? What a session to start (rule 1) or an opening (rule 2) waits on."""
    return any(other != peer and running.session.dataset == dataset
               and (running.answered or not moving_only)
               for (other, _), running in sessions.items())


def unanswered(sessions: Sessions, dataset: str, peer: bytes, *,
               others: bool) -> list[tuple[bytes, int, Running]]:
    """The sessions over `dataset` we opened that are not answered yet, as (peer, id,
    session): with `peer`, or with every peer but it (`others`)."""
    return [(other, session_id, running)
            for (other, session_id), running in list(sessions.items())
            if (other != peer) == others and running.initiated and not running.answered
            and running.session.dataset == dataset]


class Staggering:
    """The waiting sessions (`queue`) and the rules that fill and empty it, over the running
    sessions of a `SessionTable` (read here; ended only through `abandon`)."""

    def __init__(self, ctx: NodeContext, sessions: Sessions, counters: Counter[str],
                 abandon: Abandon) -> None:
        self._ctx = ctx
        self._sessions = sessions
        self._counters = counters
        self._abandon = abandon
        self.queue = SessionQueue()

    def wait_to_start(self, peer: bytes, dataset: str, now: float) -> bool:
        """Rule 1: does a session of ours with `peer` over `dataset` wait (it is queued)?"""
        if not elsewhere(self._sessions, peer, dataset, moving_only=False):
            return False
        self.queue.add(Waiting(peer, dataset, now, None))
        self._counters["sessions_waited"] += 1
        return True

    def wait_to_answer(self, peer: bytes, opening: ReconcileOpen, now: float) -> bool:
        """Rule 2, for an opening that moves records: does it wait (it is queued)?"""
        if not elsewhere(self._sessions, peer, opening.dataset, moving_only=True):
            return False
        self.queue.add(Waiting(peer, opening.dataset, now, opening))
        self._counters["sessions_waited"] += 1
        self.arm()
        return True

    def cross(self, peer: bytes, opening: ReconcileOpen) -> list[ReconcileAbort] | None:
        """Rule 4 for the peer's opening: None if our crossed session stands (refuse the
        opening with CROSSED); else the aborts of our crossed sessions, now abandoned."""
        self.queue.discard(peer, dataset=opening.dataset, openings=False)
        crossed = unanswered(self._sessions, opening.dataset, peer, others=False)
        if not crossed:
            return []
        self._counters["sessions_crossed"] += 1
        if self._ctx.node_id < peer:
            return None
        aborts = []
        for _, session_id, _ in crossed:
            self._abandon(peer, session_id, CROSSED)
            aborts.append(ReconcileAbort(session_id, CROSSED))
        return aborts

    def withdraw(self, peer: bytes, dataset: str, now: float) -> None:
        """Rule 3: we are about to answer `peer` over `dataset`; our unanswered staggered
        sessions over it with other peers wait for this one instead (the peer is told with an
        abort)."""
        for other, session_id, running in unanswered(self._sessions, dataset, peer,
                                                     others=True):
            if running.staggered and running.withdrawals < WITHDRAWALS_MAX:
                self._abandon(other, session_id, WITHDRAWN)
                self._ctx.send(other, ReconcileAbort(session_id, WITHDRAWN))
                self.queue.add(Waiting(other, dataset, now, None,
                                       withdrawals=running.withdrawals + 1))
                self._counters["sessions_withdrawn"] += 1

    def due(self, now: float) -> Waiting | None:
        """Remove and return the oldest waiting session that may go now (rule 5), or None."""
        return self.queue.due(self._held, now)

    def _held(self, waiting: Waiting) -> bool:
        return elsewhere(self._sessions, waiting.peer, waiting.dataset,
                         moving_only=waiting.opening is not None)

    def arm(self) -> None:
        """Set WAIT_TIMER to the latest start of the waiting sessions (rule 5)."""
        deadline = self.queue.next_deadline()
        if deadline is None:
            self._ctx.timers.cancel(WAIT_TIMER)
        else:
            self._ctx.timers.set(WAIT_TIMER, deadline)
