"""A peer's opening of a reconciliation session: answered now, left to wait, or refused
(anti_entropy.py rules 2, 7, 8 and 9). The steps, in this order:
1. An opening over a dataset no digest covers, or one malformed, is a protocol error.
2. One over a scope this node does not share with the peer is refused (anti_entropy.py
   rule 2).
3. One whose id runs already is refused, and, unless it waited its turn already, so is one
   past the sessions the peer may run at once (`crowded`) or one that waits already.
4. Of two openings that cross, the one of the lower node id stands (anti_entropy.py rule 8,
   staggering.py rule 4).
5. One that would move records (its root is not ours) and finds spent what the peer's
   sessions may make this node send is refused (anti_entropy.py rule 9, stream_budget.py);
   what those sessions send is spent here too (`spend`). One whose root equals ours sends
   nothing, and is answered whatever the budget: a `repair` just after a round that filled
   the peer finds the two in step, not refused.
6. One that would move records waits while a session over its dataset with another peer
   moves (anti_entropy.py rule 7), unless it waited already; before it is answered, the
   unanswered sessions of ours over its dataset with other peers are withdrawn
   (staggering.py rule 3).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from .digests import Digests
from .errors import RemoteProtocolError
from .merkle import Digest
from .reconcile import ReconcileSession
from .reconcile_messages import ReconcileAbort, ReconcileOpen
from .scopes import ScopeView
from .session_table import SessionTable
from .staggering import CROSSED, Staggering
from .stream_budget import StreamBudget

__all__ = ["Openings"]


class Openings:
    def __init__(self, digests: Digests, table: SessionTable, stagger: Staggering,
                 counters: Counter[str], crowded: Callable[[bytes], bool]) -> None:
        """`crowded(peer)`: the peer runs or waits as many sessions as it may open."""
        self._digests = digests
        self._table = table
        self._stagger = stagger
        self._counters = counters
        self._crowded = crowded
        self._streamed = StreamBudget()  # anti_entropy.py rule 9

    def judge(self, peer: bytes, opening: ReconcileOpen, view: ScopeView, now: float, *,
              may_wait: bool) -> tuple[list[object], Digest | None]:
        """(the aborts to send, the digest to answer the opening over now, or None).
        `may_wait`: false for an opening that waited its turn already.

        Raises RemoteProtocolError for an opening no session can take (step 1)."""
        if not self._digests.covers(opening.dataset):
            raise RemoteProtocolError(f"reconciliation of unknown dataset {opening.dataset!r}")
        ReconcileSession.check_opening(opening)
        digest = self._digests.digest_for(peer, opening.dataset, view, responding=True)
        if digest is None:
            self._counters["sessions_refused_scope"] += 1
            return [ReconcileAbort(opening.session, "scope not shared")], None
        if (peer, opening.session) in self._table or (may_wait and (
            self._crowded(peer) or self._stagger.queue.holds(peer, opening.session)
        )):
            return [ReconcileAbort(opening.session, "too many sessions")], None
        aborts = self._stagger.cross(peer, opening)  # step 4
        if aborts is None:
            return [ReconcileAbort(opening.session, CROSSED)], None
        # Equal roots are answered at once in one round trip: nothing to send, wait for or on.
        moves = opening.root != digest.root or opening.count != digest.count
        if moves and self._streamed.owed(peer, opening.dataset, self._full(opening.dataset),
                                         now) < 1:
            # Step 5: ten openings claiming an empty store must not make us stream the whole
            # dataset ten times over.
            self._counters["sessions_refused_owed"] += 1
            return [*aborts, ReconcileAbort(opening.session,
                                            "sent this dataset in full recently")], None
        if moves and may_wait and self._stagger.wait_to_answer(peer, opening, now):
            return list(aborts), None
        if moves:
            self._stagger.withdraw(peer, opening.dataset, now)
        return list(aborts), digest

    def spend(self, peer: bytes, dataset: str, sent: int, now: float) -> None:
        """A session the peer opened sent it `sent` records of `dataset` (step 5)."""
        self._streamed.spend(peer, dataset, sent, self._full(dataset), now)

    def _full(self, dataset: str) -> int:
        """One copy of `dataset`, in records (anti_entropy.py rule 9)."""
        return max(1, len(self._digests.full[dataset]))
