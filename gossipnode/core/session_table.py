"""The reconciliation sessions a node runs, and how each one ends (anti_entropy.py rules 4 to 6
and 10).

1. Sessions are keyed by (peer, session id), in the order they started (so that runs are
   deterministic); each running session's stall deadline is the node's timer
   ("session", peer, id), moved at every message (`arm`).
2. Every session that ends, whether it completed, failed or was abandoned, leaves the table
   and is reported with exactly one `SyncCompleted` event (`end`).
3. A session that stalled, or whose transport was lost, is *cut*: its peer and dataset wait in
   `take_cut` for the scheduler to open it again. One the peer aborted, or that failed on a
   protocol error, is not.
4. What the last completed session with each peer moved is kept per peer and dataset
   (`PeerSync`): `status` shows it, and the scheduler reads when a peer last synced.
5. A session whose shared scope a new view narrowed is abandoned, with an abort to send
   (`rescope`; anti_entropy.py rule 10); one whose scope widened to "all" runs on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from .context import NodeContext
from .events import SyncCompleted
from .reconcile import ReconcileSession
from .reconcile_messages import ReconcileAbort
from .scopes import ScopeView

__all__ = ["SESSION_TIMER", "PeerSync", "Running", "SessionTable"]

# The node's timer key of one session: ("session", peer, session id).
SESSION_TIMER = "session"


@dataclass(slots=True)
class Running:
    """A session of AntiEntropy's, running."""

    session: ReconcileSession
    started: float
    initiated: bool
    received: int = 0
    sent: int = 0
    # Moving (session_queue.py rule 2): one we answer, or one we opened that the peer answered.
    answered: bool = False
    staggered: bool = False  # started by the scheduler, to wait its turn (session_queue.py)
    withdrawals: int = 0  # times it was withdrawn before this opening (staggering.py)
    # The shared scope it covers ("all", "pair" or "receive": ScopeView.shared_scope) when it
    # started; a view that narrows it ends the session (rule 5, anti_entropy.py rule 10).
    scope: str | None = None


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


class SessionTable:
    """The running sessions, keyed by (peer, id), with their timers and their ends."""

    def __init__(self, ctx: NodeContext, counters: Counter[str]) -> None:
        self._ctx = ctx
        self._counters = counters
        self.sessions: dict[tuple[bytes, int], Running] = {}
        self._sync: dict[bytes, _PeerSync] = {}
        # Rule 3: peer -> datasets of its sessions cut since the scheduler last took them.
        self._cut: dict[bytes, set[str]] = {}
        self.session_seconds = 0.0

    def __len__(self) -> int:
        return len(self.sessions)

    def __contains__(self, key: tuple[bytes, int]) -> bool:
        return key in self.sessions

    def get(self, peer: bytes, session_id: int) -> Running | None:
        return self.sessions.get((peer, session_id))

    def add(self, peer: bytes, session_id: int, running: Running) -> None:
        self.sessions[(peer, session_id)] = running
        self.arm(peer, session_id, running.session)

    def with_peer(self, peer: bytes) -> Iterator[Running]:
        return (running for (other, _), running in self.sessions.items() if other == peer)

    def arm(self, peer: bytes, session_id: int, session: ReconcileSession) -> None:
        """Set the session's stall timer to its deadline (rule 1)."""
        deadline = session.next_deadline()
        key = (SESSION_TIMER, peer, session_id)
        if deadline is None:
            self._ctx.timers.cancel(key)
        else:
            self._ctx.timers.set(key, deadline)

    def end(self, peer: bytes, session_id: int, running: Running, now: float) -> bool:
        """The session is done or failed: remove it, count it, report it (rule 2). True if it
        completed."""
        session = running.session
        del self.sessions[(peer, session_id)]
        self._ctx.timers.cancel((SESSION_TIMER, peer, session_id))
        if session.failed is not None:
            self._counters["sessions_failed"] += 1
            self._ended(peer, session_id, running, session.failed)
            return False
        self._counters["sessions_completed"] += 1
        self.session_seconds += now - running.started
        sync = self._sync.setdefault(peer, _PeerSync())
        sync.synced_at = now
        sync.last_moved = running.received + running.sent
        identical = sync.last_moved == 0
        previous = sync.datasets.get(session.dataset)
        if previous is None or previous[0] != identical:
            sync.datasets[session.dataset] = (identical, now)
        self._ended(peer, session_id, running, None)
        return True

    def _ended(self, peer: bytes, session_id: int, running: Running,
               failure: str | None) -> None:
        self._ctx.emit(SyncCompleted(
            peer, running.session.dataset, session_id, running.initiated,
            running.received, running.sent, failure,
        ))

    def expire(self, due: Iterable[tuple[bytes, int]],
               now: float) -> list[tuple[bytes, object]]:
        """Fail the stalled sessions among those whose timers fell due, as (peer, session
        id), and cut them (rule 3); return the aborts to send, as (peer, message)."""
        due = set(due)
        aborts: list[tuple[bytes, object]] = []
        if not due:
            return aborts
        # In the order the sessions started, so that runs are deterministic.
        for key in [k for k in self.sessions if k in due]:
            peer, session_id = key
            running = self.sessions[key]
            running.session.handle_timer(now)
            if running.session.failed is not None:
                aborts.extend((peer, m) for m in running.session.messages_to_send())
                del self.sessions[key]
                self._counters["sessions_failed"] += 1
                self.cut(peer, running.session.dataset)
                self._ended(peer, session_id, running, running.session.failed)
            else:
                self.arm(peer, session_id, running.session)
        return aborts

    def abandon(self, peer: bytes, session_id: int, reason: str, *, cut: bool = False) -> None:
        """End a session without an answer; `cut`: its transport failed (rule 3)."""
        running = self.sessions.pop((peer, session_id), None)
        if running is not None:
            self._ctx.timers.cancel((SESSION_TIMER, peer, session_id))
            self._counters["sessions_abandoned"] += 1
            if cut:
                self.cut(peer, running.session.dataset)
            self._ended(peer, session_id, running, reason)

    def abandon_peer(self, peer: bytes, reason: str, *, cut: bool = False) -> None:
        for key in [k for k in self.sessions if k[0] == peer]:
            self.abandon(peer, key[1], reason, cut=cut)

    def rescope(self, view: ScopeView) -> list[tuple[bytes, ReconcileAbort]]:
        """End every running session whose scope `view` narrowed (rule 5); return the
        aborts to send, as (peer, message)."""
        aborts: list[tuple[bytes, ReconcileAbort]] = []
        for (peer, session_id), running in list(self.sessions.items()):
            scope = view.shared_scope(peer, running.session.dataset)
            if scope != running.scope and scope != "all":
                self.abandon(peer, session_id, "scope changed")
                self._counters["sessions_ended_scope"] += 1
                aborts.append((peer, ReconcileAbort(session_id, "scope changed")))
        return aborts

    def cut(self, peer: bytes, dataset: str) -> None:
        """Note a session with `peer` over `dataset` as cut (rule 3)."""
        self._cut.setdefault(peer, set()).add(dataset)

    def take_cut(self) -> dict[bytes, set[str]]:
        """The sessions cut since the last call, as peer -> datasets (rule 3)."""
        cut, self._cut = self._cut, {}
        return cut

    def peer_sync(self, peer: bytes, *, running: bool) -> PeerSync:
        """Rule 4; `running`: sessions with the peer run or wait."""
        sync = self._sync.get(peer, _PeerSync())
        if running:
            state = "repairing"
        elif sync.last_moved is None:
            state = "unknown"
        else:
            state = "converged" if sync.last_moved == 0 else "behind"
        return PeerSync(state, sync.synced_at, sync.last_moved, dict(sync.datasets))
