"""Anti-entropy for one node: its reconciliation sessions, over the digests it keeps.

Rules:
1. Sessions run over the digests of digests.py (`Digests`), which mirror the store.
2. A session covers exactly one shared scope (`ScopeView.shared_scope`). A peer that opens
   a session over a scope we do not share with it gets a ReconcileAbort, never a digest.
3. Sessions never write; the scheduler filters and applies what they received (`absorb`),
   before their answers are built.
4. Session ids are random 63-bit numbers chosen by the initiator; sessions are keyed by
   (peer, id), so both sides may run sessions with each other at once (pipelining).
5. Every session that ends, whether it completed, failed or was abandoned, is reported with
   one `SyncCompleted` event; each running session's stall deadline is a key in the node's
   timers, moved at every message (core/session_table.py keeps the running sessions).
6. A session cut short by its transport (the connection to the peer was lost) or that
   stalled is *cut*, whichever end opened it: its peer and dataset wait in `take_cut` for the
   scheduler to open it again (sync.py rule 5). A session the peer aborted, or that failed
   on a protocol error, is not: asking again would get the same answer.
7. One moving session per dataset at a time (core/session_queue.py): a session the scheduler
   starts (`start_round(..., stagger=True)`) waits while a session over its dataset with
   another peer runs, and a peer's opening waits unanswered while one is moving, so that a
   member that sees several peers return is not sent the same records by each of them. What
   waits counts as running with that peer (`running`, `datasets_running`): no second session
   over the dataset is opened meanwhile (sync.py rule 6). `ready` hands out what may go.
   core/staggering.py carries out rules 7 and 8.
8. Two openings over one dataset that cross (each end opened before it saw the other's, so
   neither session is answered yet) would move every difference twice: the session opened by
   the lower node id stands. The lower end refuses the higher end's opening, and the higher
   end abandons its own (with an abort) and answers the lower end's.
9. What sessions a peer opens make us send it is bounded to one copy of the dataset per
   STREAM_WINDOW_S, as a budget that refills continuously (core/stream_budget.py); an opening
   that finds it spent is refused.
10. A session ends, with an abort, as soon as a new scope view narrows the scope it covers
   (`rescope`): the peer's grant or eligibility was revoked, or this node's, whichever end
   opened it. Its range bounds, counts and ids describe the records of that scope (a bound
   is a prefix of a record's key), including those written since, and the peer may no
   longer hear of them; the check of each record sent (core/outbound.py) does not see them.
   A session waiting its turn is judged when it goes (`ready`, `_open`).

The parts: core/session_openings.py judges a peer's opening (rules 2, 7, 8 and 9),
core/store_sessions.py makes each session over the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from .catalog import REPLICATED_DATASETS
from .context import NodeContext
from .digests import Digests
from .merkle import Digest
from .reconcile_messages import ReconcileAbort, ReconcileOpen, ReconcileTurn
from .records import Record
from .scopes import ScopeView
from .session_openings import Openings
from .session_queue import Waiting
from .session_table import SESSION_TIMER, PeerSync, Running, SessionTable
from .staggering import CROSSED, Staggering
from .store_sessions import StoreSessions

# CROSSED and SESSION_TIMER are named here too: what the node and its tests see of the parts.
__all__ = ["CROSSED", "RECONCILE_MESSAGES", "SESSION_TIMER", "AntiEntropy", "PeerSync"]

# What the caller does with the records a message brought, before the replies are built.
Absorb = Callable[[list[Record]], object]

RECONCILE_MESSAGES = (ReconcileOpen, ReconcileTurn, ReconcileAbort)
# Sessions with one peer at once, in each direction: one per dataset, and as many again
# for a repair started while a round is running. Counted apart per direction, so that
# sessions we opened and that hang cannot crowd out the peer's own.
SESSIONS_PER_PEER_MAX = 2 * len(REPLICATED_DATASETS)


class AntiEntropy:
    def __init__(self, ctx: NodeContext, *, merging: Iterable[str] = ()) -> None:
        """`merging`: the datasets whose versions merge (their sessions send what the store
        holds when the message is built, replaced or not: reconcile.py rule 8)."""
        self._ctx = ctx
        self._sessions = StoreSessions(ctx, merging)
        self.node_id = ctx.node_id
        self.rng = ctx.rng
        self.counters: Counter[str] = Counter()
        self._table = SessionTable(ctx, self.counters)  # rules 5, 6 and 10
        self._stagger = Staggering(ctx, self._table.sessions, self.counters,
                                   self._table.abandon)  # rules 7 and 8
        self._queue = self._stagger.queue
        self.digests = Digests(ctx.store, ctx.node_id, self.counters)
        self._openings = Openings(  # a peer's openings: rules 2, 7, 8 and 9
            self.digests, self._table, self._stagger, self.counters,
            lambda peer: self.running(peer, initiated=False) >= SESSIONS_PER_PEER_MAX)

    @property
    def session_seconds(self) -> float:
        """Seconds the completed sessions took, in all."""
        return self._table.session_seconds

    # --- sessions ------------------------------------------------------------------------------

    @staticmethod
    def accepts(message: object) -> bool:
        return isinstance(message, RECONCILE_MESSAGES)

    def start_round(self, peer: bytes, view: ScopeView, now: float,
                    datasets: Sequence[str] | None = None, *,
                    stagger: bool = False, pull: bool = False) -> list[object]:
        """Open one session per dataset shared with `peer`; return the opening messages.
        `stagger`: a dataset that a session with another peer covers waits (rule 7).
        `pull`: over a scope this node only receives ("receive"), open one too, with an
        empty digest, so that the peer sends what it holds (sync.py rule 9)."""
        messages: list[object] = []
        for dataset in datasets if datasets is not None else REPLICATED_DATASETS:
            digest = self.digests.digest_for(peer, dataset, view, responding=pull)
            if digest is None or self.running(peer, initiated=True) >= SESSIONS_PER_PEER_MAX:
                continue
            if stagger and self._stagger.wait_to_start(peer, dataset, now):
                continue
            messages.extend(self._initiate(peer, digest, now, staggered=stagger))
        self._stagger.arm()
        return messages

    def _initiate(self, peer: bytes, digest: Digest, now: float, *, staggered: bool,
                  withdrawals: int = 0) -> list[object]:
        session_id = self.rng.getrandbits(63)
        session = self._sessions.initiate(session_id, digest, now)
        self._table.add(peer, session_id, Running(
            session, now, initiated=True, staggered=staggered, withdrawals=withdrawals,
            scope=self._ctx.view.shared_scope(peer, digest.dataset)))
        self.counters["sessions_started"] += 1
        return list(session.messages_to_send())

    def ready(self, view: ScopeView, now: float) -> list[tuple[bytes, list[object], bool]]:
        """Start the waiting sessions that may go now (rule 7): per peer, the messages to
        send it and whether a session completed at once."""
        out: list[tuple[bytes, list[object], bool]] = []
        while (waiting := self._stagger.due(now)) is not None:
            peer = waiting.peer
            if waiting.opening is None:
                # Ours: it waited its turn, so it starts now whatever runs by then (it is not
                # queued again, staggering.py rule 5), keeping its count of withdrawals.
                digest = self.digests.digest_for(peer, waiting.dataset, view)
                if (digest is not None and waiting.dataset not in self.datasets_running(peer)
                        and self.running(peer, initiated=True) < SESSIONS_PER_PEER_MAX):
                    messages = self._initiate(peer, digest, now, staggered=True,
                                              withdrawals=waiting.withdrawals)
                    out.append((peer, messages, False))
            else:
                replies, _, completed = self._open(peer, waiting.opening, view, now,
                                                   may_wait=False)
                out.append((peer, replies, completed))
        self._stagger.arm()
        return out

    def take_waiting(self) -> list[Waiting]:
        """Remove every waiting session (the node was quarantined)."""
        gone = self._queue.clear()
        self._stagger.arm()
        return gone

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def receive(self, peer: bytes, message: object, view: ScopeView, now: float, *,
                absorb: Absorb | None = None) -> tuple[list[object], list[Record], bool]:
        """Feed one reconciliation message: (replies, records received, a session completed).
        A session that ends is reported with a SyncCompleted event. `absorb` is called with
        the records received before the replies are built (rule 3: only the winning version
        of a key travels, reconcile.py rule 8).

        Raises RemoteProtocolError for a message no session of ours can take."""
        if isinstance(message, ReconcileOpen):
            return self._open(peer, message, view, now)
        assert isinstance(message, ReconcileTurn | ReconcileAbort)
        running = self._table.get(peer, message.session)
        if running is None:
            if isinstance(message, ReconcileAbort):
                # The peer gave up an opening that waits here (its end of a crossing).
                if self._queue.discard(peer, session=message.session, starts=False):
                    self._stagger.arm()
                return [], [], False
            return [ReconcileAbort(message.session, "no such session")], [], False
        if isinstance(message, ReconcileTurn):
            running.answered = True
        running.session.receive(message, now)
        return self._collect(peer, message.session, running, now, absorb)

    @staticmethod
    def refusal(message: object, reason: str) -> ReconcileAbort | None:
        """The abort that refuses a peer's session message (None for an abort itself)."""
        if isinstance(message, ReconcileOpen | ReconcileTurn):
            return ReconcileAbort(message.session, reason)
        return None

    def _open(self, peer: bytes, opening: ReconcileOpen, view: ScopeView, now: float, *,
              may_wait: bool = True) -> tuple[list[object], list[Record], bool]:
        aborts, digest = self._openings.judge(peer, opening, view, now, may_wait=may_wait)
        if digest is None:
            return aborts, [], False
        session = self._sessions.respond(opening, digest, now)
        running = Running(session, now, initiated=False, answered=True,
                          scope=view.shared_scope(peer, opening.dataset))
        self._table.add(peer, opening.session, running)
        self.counters["sessions_answered"] += 1
        replies, received, completed = self._collect(peer, opening.session, running, now)
        return [*aborts, *replies], received, completed

    def _collect(self, peer: bytes, session_id: int, running: Running, now: float,
                 absorb: Absorb | None = None) -> tuple[list[object], list[Record], bool]:
        session = running.session
        received = session.take_received_records()
        if absorb is not None and received:
            absorb(received)
            if self._table.get(peer, session_id) is not running:
                return [], received, False  # what it applied ended the session (a view change)
        replies: list[object] = list(session.messages_to_send())
        sent = sum(len(m.records) for m in replies if isinstance(m, ReconcileTurn))
        running.received += len(received)
        running.sent += sent
        if sent and not running.initiated:
            self._openings.spend(peer, session.dataset, sent, now)  # rule 9
        self.counters["records_received"] += len(received)
        self.counters["records_sent"] += sent
        if session.done or session.failed is not None:
            return replies, received, self._table.end(peer, session_id, running, now)
        self._table.arm(peer, session_id, session)
        return replies, received, False

    def rescope(self, view: ScopeView) -> list[tuple[bytes, ReconcileAbort]]:
        """End every running session whose scope `view` narrowed (rule 10); return the
        aborts to send, as (peer, message). A scope that widened ("receive" to "all": the
        peer was admitted) lets its session run on."""
        return self._table.rescope(view)

    def expire(self, due: Iterable[tuple[bytes, int]],
               now: float) -> list[tuple[bytes, object]]:
        """Fail the stalled sessions among those whose timers fell due, as (peer, session
        id), and cut them (rule 6); return the aborts to send, as (peer, message)."""
        return self._table.expire(due, now)

    def abandon(self, peer: bytes, session_id: int, reason: str, *, cut: bool = False) -> None:
        """End a session without an answer; `cut`: its transport failed (rule 6)."""
        self._table.abandon(peer, session_id, reason, cut=cut)

    def abandon_peer(self, peer: bytes, reason: str, *, cut: bool = False) -> None:
        self._table.abandon_peer(peer, reason, cut=cut)
        for waiting in self._queue.discard(peer):
            if cut and waiting.opening is None:  # ours, never opened: resumed as if cut
                self._table.cut(peer, waiting.dataset)
        self._stagger.arm()

    def take_cut(self) -> dict[bytes, set[str]]:
        """The sessions cut since the last call, as peer -> datasets (rule 6)."""
        return self._table.take_cut()

    # --- queries -------------------------------------------------------------------------------

    def running(self, peer: bytes, *, initiated: bool | None = None) -> int:
        """Sessions with `peer`, waiting ones included (only those we opened, or only the
        peer's, if asked)."""
        return sum(
            1 for running in self._table.with_peer(peer)
            if initiated is None or running.initiated == initiated
        ) + self._queue.count(peer, openings=None if initiated is None else not initiated)

    def datasets_running(self, peer: bytes) -> set[str]:
        """The datasets of the sessions running or waiting with `peer`, opened by either
        end."""
        return ({running.session.dataset for running in self._table.with_peer(peer)}
                | self._queue.datasets(peer))

    def sessions_running(self, peer: bytes) -> bool:
        return self.running(peer) > 0

    def peer_sync(self, peer: bytes) -> PeerSync:
        return self._table.peer_sync(peer, running=self.sessions_running(peer))

    def statistics(self) -> dict[str, int]:
        return {f"anti_entropy_{k}": v for k, v in self.counters.items()} | {
            "anti_entropy_sessions_running": len(self._table),
            "anti_entropy_sessions_waiting": len(self._queue),
        }
