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
   timers, moved at every message.
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
8. Two openings over one dataset that cross (each end opened before it saw the other's, so
   neither session is answered yet) would move every difference twice: the session opened by
   the lower node id stands. The lower end refuses the higher end's opening, and the higher
   end abandons its own (with an abort) and answers the lower end's.
9. What sessions a peer opens make us send it is bounded to one copy of the dataset per
   STREAM_WINDOW_S, as a budget that refills continuously (core/stream_budget.py); an opening
   that finds it spent is refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .catalog import REPLICATED_DATASETS
from .context import NodeContext
from .digests import Digests
from .errors import RemoteProtocolError
from .events import SyncCompleted
from .reconcile import ReconcileSession
from .reconcile_messages import ReconcileAbort, ReconcileOpen, ReconcileTurn
from .records import Record
from .scopes import ScopeView
from .session_queue import Running, SessionQueue, Waiting, elsewhere, unanswered
from .stream_budget import StreamBudget

__all__ = ["RECONCILE_MESSAGES", "AntiEntropy", "PeerSync"]

# What the caller does with the records a message brought, before the replies are built.
Absorb = Callable[[list[Record]], object]

RECONCILE_MESSAGES = (ReconcileOpen, ReconcileTurn, ReconcileAbort)
# Sessions with one peer at once, in each direction: one per dataset, and as many again
# for a repair started while a round is running. Counted apart per direction, so that
# sessions we opened and that hang cannot crowd out the peer's own.
SESSIONS_PER_PEER_MAX = 2 * len(REPLICATED_DATASETS)
# The node's timer key of one session: ("session", peer, session id).
SESSION_TIMER = "session"
# The node's timer key of the latest start of the waiting sessions (rule 7).
WAIT_TIMER = "session_wait"
# Why the higher end's crossed session is abandoned (rule 8).
CROSSED = "crossed: the session opened by the lower node id stands"
# Why an unanswered session of ours is given up for a peer's (rule 7); it is opened again
# once that one ends.
WITHDRAWN = "withdrawn: waits for another session over the dataset"
# Times one session of ours may be withdrawn (rule 7): each time it waits for a session that
# moves records; bounded, so that no chain of withdrawals and reopenings can run for ever.
WITHDRAWALS_MAX = 3


class PeerSync(NamedTuple):
    """How this node stands with a peer: "repairing" (sessions running), "converged" (the
    last completed session moved nothing), "behind", or "unknown" (none completed yet)."""

    state: str
    synced_at: float | None
    last_moved: int | None
    # Per dataset: (identical, since): did the last completed session find nothing to move,
    # and since when has that answer held. The cluster view of `status`.
    datasets: dict[str, tuple[bool, float]]


@dataclass(slots=True)
class _PeerSync:
    synced_at: float | None = None
    last_moved: int | None = None
    datasets: dict[str, tuple[bool, float]] = field(default_factory=dict)


class AntiEntropy:
    def __init__(self, ctx: NodeContext, *, merging: Iterable[str] = ()) -> None:
        """`merging`: the datasets whose versions merge (their sessions send what the store
        holds when the message is built, replaced or not: reconcile.py rule 8)."""
        self._ctx = ctx
        self._merging = frozenset(merging)
        self.config = ctx.config
        self.store = ctx.store
        self.node_id = ctx.node_id
        self.rng = ctx.rng
        self._sessions: dict[tuple[bytes, int], Running] = {}
        self._sync: dict[bytes, _PeerSync] = {}
        # Rule 6: peer -> datasets of its sessions cut since the scheduler last took them.
        self._cut: dict[bytes, set[str]] = {}
        self._streamed = StreamBudget()  # rule 9
        self._queue = SessionQueue()  # rule 7
        self.counters: Counter[str] = Counter()
        self.session_seconds = 0.0
        self.digests = Digests(ctx.store, ctx.node_id, self.counters)

    # --- sessions ------------------------------------------------------------------------------

    @staticmethod
    def accepts(message: object) -> bool:
        return isinstance(message, RECONCILE_MESSAGES)

    def start_round(self, peer: bytes, view: ScopeView, now: float,
                    datasets: Sequence[str] | None = None, *,
                    stagger: bool = False) -> list[object]:
        """Open one session per dataset shared with `peer`; return the opening messages.
        `stagger`: a dataset that a session with another peer covers waits (rule 7)."""
        messages: list[object] = []
        for dataset in datasets if datasets is not None else REPLICATED_DATASETS:
            digest = self.digests.digest_for(peer, dataset, view)
            if digest is None or self.running(peer, initiated=True) >= SESSIONS_PER_PEER_MAX:
                continue
            if stagger and elsewhere(self._sessions, peer, dataset, moving_only=False):
                self._queue.add(Waiting(peer, dataset, now, None))
                self.counters["sessions_waited"] += 1
                continue
            session_id = self.rng.getrandbits(63)
            session = ReconcileSession.initiate(
                session_id, digest, self._fetch(dataset), self.config.reconcile,
                self.config.limits, self.rng, now, skip_replaced=dataset not in self._merging,
                fetch_many=self._fetch_many(dataset),
            )
            self._sessions[(peer, session_id)] = Running(session, now, initiated=True,
                                                          staggered=stagger)
            self._arm(peer, session_id, session)
            self.counters["sessions_started"] += 1
            messages.extend(session.messages_to_send())
        self._arm_wait()
        return messages

    def ready(self, view: ScopeView, now: float) -> list[tuple[bytes, list[object], bool]]:
        """Start the waiting sessions that may go now (rule 7): per peer, the messages to
        send it and whether a session completed at once."""
        out: list[tuple[bytes, list[object], bool]] = []
        while (waiting := self._queue.due(self._held, now)) is not None:
            if waiting.opening is None:
                if waiting.dataset not in self.datasets_running(waiting.peer):
                    messages = self.start_round(waiting.peer, view, now, (waiting.dataset,),
                                                stagger=True)
                    for message in messages:
                        running = self._sessions[(waiting.peer, message.session)]
                        running.withdrawals = waiting.withdrawals
                    out.append((waiting.peer, messages, False))
            else:
                replies, _, completed = self._open(waiting.peer, waiting.opening, view, now,
                                                   may_wait=False)
                out.append((waiting.peer, replies, completed))
        self._arm_wait()
        return out

    def take_waiting(self) -> list[Waiting]:
        """Remove every waiting session (the node was quarantined)."""
        gone = self._queue.clear()
        self._arm_wait()
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
        running = self._sessions.get((peer, message.session))
        if running is None:
            if isinstance(message, ReconcileAbort):
                # The peer gave up an opening that waits here (its end of a crossing).
                if self._queue.discard(peer, session=message.session, starts=False):
                    self._arm_wait()
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
        if not self.digests.covers(opening.dataset):
            raise RemoteProtocolError(f"reconciliation of unknown dataset {opening.dataset!r}")
        ReconcileSession.check_opening(opening)
        digest = self.digests.digest_for(peer, opening.dataset, view, responding=True)
        if digest is None:
            self.counters["sessions_refused_scope"] += 1
            return [ReconcileAbort(opening.session, "scope not shared")], [], False
        if (peer, opening.session) in self._sessions or (may_wait and (
            self.running(peer, initiated=False) >= SESSIONS_PER_PEER_MAX
            or self._queue.holds(peer, opening.session)
        )):
            return [ReconcileAbort(opening.session, "too many sessions")], [], False
        # Rule 8: their session covers what ours would have, had it not waited.
        self._queue.discard(peer, dataset=opening.dataset, openings=False)
        crossed = unanswered(self._sessions, opening.dataset, peer, others=False)
        aborts: list[object] = []
        if crossed:
            self.counters["sessions_crossed"] += 1
            if self.node_id < peer:
                return [ReconcileAbort(opening.session, CROSSED)], [], False
            for _, session_id, _ in crossed:
                self.abandon(peer, session_id, CROSSED)
                aborts.append(ReconcileAbort(session_id, CROSSED))
        if self._streamed.owed(peer, opening.dataset, self._full(opening.dataset), now) < 1:
            # Rule 9: ten openings claiming an empty store must not make us stream the whole
            # dataset ten times over.
            self.counters["sessions_refused_owed"] += 1
            return [*aborts, ReconcileAbort(opening.session,
                                            "sent this dataset in full recently")], [], False
        # Equal roots are answered at once in one round trip: nothing to wait for or on.
        moves = opening.root != digest.root or opening.count != digest.count
        if moves and may_wait and elsewhere(self._sessions, peer, opening.dataset,
                                            moving_only=True):
            self._queue.add(Waiting(peer, opening.dataset, now, opening))
            self.counters["sessions_waited"] += 1
            self._arm_wait()
            return aborts, [], False
        if moves:
            self._withdraw(peer, opening.dataset, now)
        session = ReconcileSession.respond(
            opening, digest, self._fetch(opening.dataset), self.config.reconcile,
            self.config.limits, now, skip_replaced=opening.dataset not in self._merging,
            fetch_many=self._fetch_many(opening.dataset),
        )
        running = Running(session, now, initiated=False, answered=True)
        self._sessions[(peer, opening.session)] = running
        self._arm(peer, opening.session, session)
        self.counters["sessions_answered"] += 1
        replies, received, completed = self._collect(peer, opening.session, running, now)
        return [*aborts, *replies], received, completed

    def _withdraw(self, peer: bytes, dataset: str, now: float) -> None:
        """We are about to answer `peer` over `dataset`: the sessions over it that we
        opened with other peers and that are not answered yet wait for this one instead
        (rule 7); the peer is told with an abort."""
        for other, session_id, running in unanswered(self._sessions, dataset, peer,
                                                     others=True):
            if running.staggered and running.withdrawals < WITHDRAWALS_MAX:
                self.abandon(other, session_id, WITHDRAWN)
                self._ctx.send(other, ReconcileAbort(session_id, WITHDRAWN))
                self._queue.add(Waiting(other, dataset, now, None,
                                        withdrawals=running.withdrawals + 1))
                self.counters["sessions_withdrawn"] += 1

    def _held(self, waiting: Waiting) -> bool:
        return elsewhere(self._sessions, waiting.peer, waiting.dataset,
                         moving_only=waiting.opening is not None)

    def _arm_wait(self) -> None:
        deadline = self._queue.next_deadline()
        if deadline is None:
            self._ctx.timers.cancel(WAIT_TIMER)
        else:
            self._ctx.timers.set(WAIT_TIMER, deadline)

    def _collect(self, peer: bytes, session_id: int, running: Running, now: float,
                 absorb: Absorb | None = None) -> tuple[list[object], list[Record], bool]:
        session = running.session
        received = session.take_received_records()
        if absorb is not None and received:
            absorb(received)
            if self._sessions.get((peer, session_id)) is not running:
                return [], received, False  # what it applied ended the session (a view change)
        replies: list[object] = list(session.messages_to_send())
        sent = sum(len(m.records) for m in replies if isinstance(m, ReconcileTurn))
        running.received += len(received)
        running.sent += sent
        if sent and not running.initiated:
            self._streamed.spend(peer, session.dataset, sent, self._full(session.dataset), now)
        self.counters["records_received"] += len(received)
        self.counters["records_sent"] += sent
        completed = False
        if session.done or session.failed is not None:
            del self._sessions[(peer, session_id)]
            self._ctx.timers.cancel((SESSION_TIMER, peer, session_id))
            if session.failed is None:
                completed = True
                self.counters["sessions_completed"] += 1
                self.session_seconds += now - running.started
                sync = self._sync.setdefault(peer, _PeerSync())
                sync.synced_at = now
                sync.last_moved = running.received + running.sent
                identical = sync.last_moved == 0
                previous = sync.datasets.get(session.dataset)
                if previous is None or previous[0] != identical:
                    sync.datasets[session.dataset] = (identical, now)
            else:
                self.counters["sessions_failed"] += 1
            self._ended(peer, session_id, running, session.failed)
        else:
            self._arm(peer, session_id, session)
        return replies, received, completed

    def _full(self, dataset: str) -> int:
        """One copy of `dataset`, in records (rule 9)."""
        return max(1, len(self.digests.full[dataset]))

    def _arm(self, peer: bytes, session_id: int, session: ReconcileSession) -> None:
        deadline = session.next_deadline()
        key = (SESSION_TIMER, peer, session_id)
        if deadline is None:
            self._ctx.timers.cancel(key)
        else:
            self._ctx.timers.set(key, deadline)

    def _ended(self, peer: bytes, session_id: int, running: Running,
               failure: str | None) -> None:
        self._ctx.emit(SyncCompleted(
            peer, running.session.dataset, session_id, running.initiated,
            running.received, running.sent, failure,
        ))

    def _fetch(self, dataset: str):
        store = self.store
        return lambda key: store.get(dataset, key)

    def _fetch_many(self, dataset: str):
        store = self.store
        return lambda keys: {key: record for (_, key), record
                             in store.get_many((dataset, key) for key in keys).items()}

    def expire(self, due: Iterable[tuple[bytes, int]],
               now: float) -> list[tuple[bytes, object]]:
        """Fail the stalled sessions among those whose timers fell due, as (peer, session
        id); return the aborts to send, as (peer, message)."""
        due = set(due)
        aborts: list[tuple[bytes, object]] = []
        if not due:
            return aborts
        # In the order the sessions started, so that runs are deterministic.
        for key in [k for k in self._sessions if k in due]:
            peer, session_id = key
            running = self._sessions[key]
            running.session.handle_timer(now)
            if running.session.failed is not None:
                aborts.extend((peer, m) for m in running.session.messages_to_send())
                del self._sessions[key]
                self.counters["sessions_failed"] += 1
                self._cut.setdefault(peer, set()).add(running.session.dataset)
                self._ended(peer, session_id, running, running.session.failed)
            else:
                self._arm(peer, session_id, running.session)
        return aborts

    def abandon(self, peer: bytes, session_id: int, reason: str, *, cut: bool = False) -> None:
        """End a session without an answer; `cut`: its transport failed (rule 6)."""
        running = self._sessions.pop((peer, session_id), None)
        if running is not None:
            self._ctx.timers.cancel((SESSION_TIMER, peer, session_id))
            self.counters["sessions_abandoned"] += 1
            if cut:
                self._cut.setdefault(peer, set()).add(running.session.dataset)
            self._ended(peer, session_id, running, reason)

    def abandon_peer(self, peer: bytes, reason: str, *, cut: bool = False) -> None:
        for key in [k for k in self._sessions if k[0] == peer]:
            self.abandon(peer, key[1], reason, cut=cut)
        for waiting in self._queue.discard(peer):
            if cut and waiting.opening is None:  # ours, never opened: resumed as if cut
                self._cut.setdefault(peer, set()).add(waiting.dataset)
        self._arm_wait()

    def take_cut(self) -> dict[bytes, set[str]]:
        """The sessions cut since the last call, as peer -> datasets (rule 6)."""
        cut, self._cut = self._cut, {}
        return cut

    # --- queries -------------------------------------------------------------------------------

    def running(self, peer: bytes, *, initiated: bool | None = None) -> int:
        """Sessions with `peer`, waiting ones included (only those we opened, or only the
        peer's, if asked)."""
        return sum(
            1 for (other, _), running in self._sessions.items()
            if other == peer and (initiated is None or running.initiated == initiated)
        ) + self._queue.count(peer, openings=None if initiated is None else not initiated)

    def datasets_running(self, peer: bytes) -> set[str]:
        """The datasets of the sessions running or waiting with `peer`, opened by either
        end."""
        return {running.session.dataset for (other, _), running in self._sessions.items()
                if other == peer} | self._queue.datasets(peer)

    def sessions_running(self, peer: bytes) -> bool:
        return self.running(peer) > 0

    def peer_sync(self, peer: bytes) -> PeerSync:
        sync = self._sync.get(peer, _PeerSync())
        if self.sessions_running(peer):
            state = "repairing"
        elif sync.last_moved is None:
            state = "unknown"
        else:
            state = "converged" if sync.last_moved == 0 else "behind"
        return PeerSync(state, sync.synced_at, sync.last_moved, dict(sync.datasets))

    def statistics(self) -> dict[str, int]:
        return {f"anti_entropy_{k}": v for k, v in self.counters.items()} | {
            "anti_entropy_sessions_running": len(self._sessions),
            "anti_entropy_sessions_waiting": len(self._queue),
        }
