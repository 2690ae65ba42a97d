"""Anti-entropy scheduling: when this node reconciles, with whom, and what it does with the
records a session brings.

Rules:
1. Every `anti_entropy_interval_s` one random live peer is reconciled over every dataset
   both share, and private keys and mailboxes with partners of their own in the same round.
   core/regular_rounds.py carries this rule out (its rule 1 in full).
2. A quarantined node neither starts nor answers sessions; it tells the peer with an abort
   rather than leave the peer's session slot to time out.
3. Received records pass admission and the receiver's own scope check before they are
   applied (and are not pushed onwards: every peer reconciles for itself); a completed
   session marks the node synced (the tombstone horizon restarts). core/receiving.py checks
   and applies what a message brings.
4. A peer that comes (back) alive (new to us, or back from dead or left: it started, it
   restarted, a partition healed) is reconciled with at once rather than at the next
   round, so a returning member catches up in seconds. Both ends see the same return, so
   one end is enough: the end with the lower node id starts at once, the other waits
   `REVIVED_GRACE_S` and starts only if no session with that peer ran meanwhile (it covers
   a return only it noticed). Bounded: at most one such round per peer per
   `REVIVED_PEER_GAP_S` (a member flapping faster costs one round), and immediate rounds
   with at most `REVIVED_ROUNDS_PER_INTERVAL_MAX` distinct peers per
   `anti_entropy_interval_s` for the whole node, so a restart of many members does not
   storm; the regular rounds cover whoever was left out. One member that restarts again
   and again is no storm: it is caught up at each return. A return also brings the node's
   next regular round forward to `REVIVED_FOLLOW_UP_S` after it (if it was later), with a
   random peer as always: after a heal what each member took from the other side in its own
   immediate sessions spreads to its siblings in that round. (Returns that keep coming make
   at most one round per `REVIVED_FOLLOW_UP_S`: each round re-arms the next an interval
   on.) A suspicion refuted is a return too (member_views.py `MemberViews.revived`): a
   partition shorter than the suspicion timeout ends with no member ever declared dead.
   core/immediate_rounds.py carries this rule out.
5. A session cut short (anti_entropy.py rule 6: its connection was lost, or it stalled) is
   opened again with the same peer over the same datasets `RESUME_AFTER_S` later, by
   whichever end saw the cut, rather than at the next round: after a heal, links that
   overflow under the burst of pushes would otherwise leave the two sides apart for a whole
   interval. Bounded: the wait doubles with each resume that a completed session with the
   peer did not follow, and after `RESUMES_MAX` of them the regular rounds take over.
   core/resumption.py carries this rule out.
6. A round, an immediate round or a resumption opens no session over a dataset that a
   session with the same peer already covers, whichever end opened it: one session moves the
   differences of both sides, and a second one at the same time would move them all again
   (only `repair`, asked for by an operator, may add one).
7. A round, an immediate round or a resumption is staggered (anti_entropy.py rule 7): over a
   dataset that a session with another peer covers, its session waits for that one to end,
   so that a member reconciles with the returning peers of a healed partition one after
   another and is sent what they all hold once, not once per peer. `sessions_ended`, called
   after every input that may end a session, starts what waited.
8. Nor does a round or an immediate round open a session over a dataset on which the peer
   advertised (cluster_view.py rule 5), since it last came alive, the very root this node
   holds: identical data, nothing to move. A cluster started together, whose every return
   brings a round forward (rule 4), thus exchanges no sessions while its data agrees. A
   resumption, a `repair` and the round that follows a reseed always open theirs (a root
   the peer advertised moments before may be older than a write it pushed us, which the
   reseed discarded). An immediate round with a peer whose
   roots have not come since its return asks for them first and waits for them, a round
   trip, at most `ROOTS_WAIT_S` (core/immediate_rounds.py rule 5): a false suspicion
   refuted opens no session over data that agrees.
9. A new scope view that gives this node a dataset it did not hold (it was admitted, granted
   private keys or WEP, or learned its grants again after a reseed) brings its next round
   forward to now, at most once per `GAINED_ROUND_GAP_S`, and the round after that one to
   `GAINED_FOLLOW_UP_S` later, for peers that learn of the change after it; after a reseed,
   until its own view admits it again, its rounds pull the administrative records from a
   random live peer.
   core/gained_rounds.py carries this rule out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from .admission import Admission
from .anti_entropy import AntiEntropy
from .catalog import REPLICATED_DATASETS
from .context import NodeContext
from .errors import LocalProtocolError
from .gained_rounds import GAINED_FOLLOW_UP_S, GAINED_ROUND_GAP_S, GainedRounds
from .immediate_rounds import (
    REVIVED_FOLLOW_UP_S,
    REVIVED_GRACE_S,
    REVIVED_NOTICE_SKEW_S,
    REVIVED_PEER_GAP_S,
    REVIVED_ROUNDS_PER_INTERVAL_MAX,
    ROOTS_WAIT_S,
    TIMER_REVIVED,
    AskRoots,
    ImmediateRounds,
)
from .lifecycle import Lifecycle
from .receiving import Apply, Receiving
from .regular_rounds import PAIR_PARTNERS_PER_ROUND, TIMER_ANTI_ENTROPY, RegularRounds
from .resumption import RESUME_AFTER_S, RESUMES_MAX, TIMER_RESUME, Resumption

# The constants of rules 1, 4, 5 and 9 are named here too: what the node and its tests see.
__all__ = [
    "GAINED_FOLLOW_UP_S",
    "GAINED_ROUND_GAP_S",
    "PAIR_PARTNERS_PER_ROUND",
    "RESUMES_MAX",
    "RESUME_AFTER_S",
    "REVIVED_FOLLOW_UP_S",
    "REVIVED_GRACE_S",
    "REVIVED_NOTICE_SKEW_S",
    "REVIVED_PEER_GAP_S",
    "REVIVED_ROUNDS_PER_INTERVAL_MAX",
    "ROOTS_WAIT_S",
    "TIMER_ANTI_ENTROPY",
    "TIMER_RESUME",
    "TIMER_REVIVED",
    "RepairStarted",
    "SyncScheduler",
]

# (peer, heard_since, now) -> the datasets whose roots the peer advertised, since
# heard_since, equal to ours (rule 8; cluster_view.py `ClusterView.agreed_with`).
Agreed = Callable[[bytes, float, float], frozenset[str]]


class RepairStarted(NamedTuple):
    peer: bytes
    sessions: tuple[int, ...]  # the ids of the sessions opened; each ends in a SyncCompleted


class SyncScheduler:
    def __init__(self, ctx: NodeContext, lifecycle: Lifecycle, anti_entropy: AntiEntropy,
                 admission: Admission, apply: Apply, agreed: Agreed | None = None, *,
                 ask_roots: AskRoots | None = None) -> None:
        """`agreed`: rule 8's datasets agreed with a peer; `ask_roots(peer, now)`: ask a
        peer for its roots (rule 8), the message handed to the driver at once (by default
        the membership's `ask_roots`, whose message leaves with its next output)."""
        self._ctx = ctx
        self._agreed = agreed
        self._lifecycle = lifecycle
        self._anti_entropy = anti_entropy
        self._receiving = Receiving(ctx, lifecycle, anti_entropy, admission, apply)  # rule 3
        self._gained = GainedRounds(  # rule 9
            ctx, anti_entropy, lambda at: self._regular.bring_forward(at),
            lambda: self._regular.next_round)
        self._regular = RegularRounds(ctx, lifecycle, anti_entropy,  # rule 1
                                      self._gained, self._start_sessions)
        self._immediate = ImmediateRounds(  # rule 4
            ctx, lifecycle, anti_entropy,
            lambda peer, now: self._start_sessions(peer, None, now, skip_agreed=True),
            self._regular.bring_forward, ask_roots or ctx.membership.ask_roots,
            ctx.membership.roots_heard_at)
        self._resumption = Resumption(ctx, lifecycle, anti_entropy,  # rule 5
                                      self._start_sessions)

    def start(self, now: float) -> None:
        self._regular.start(now)

    def reseeded(self, now: float) -> None:
        """The replicated data was discarded and the view taken anew: pull afresh at once,
        the grants first when the view no longer admits this node (rule 9)."""
        self._gained.reseeded()
        self._regular.reseeded(now)

    def view_changed(self, now: float) -> None:
        """A new scope view was taken: a round at once for what it gives (rule 9)."""
        self._gained.view_changed(now)

    def round(self, now: float) -> bool:
        """One anti-entropy round (rule 1); re-arms its timer. False when it did not run
        (quarantined, or no live peer)."""
        return self._regular.round(now)

    def revived(self, peers: Iterable[bytes], now: float) -> None:
        """These peers came (back) alive: schedule their immediate rounds (rule 4)."""
        self._immediate.revived(peers, now)

    def revived_due(self, peers: Iterable[bytes], now: float) -> None:
        """The immediate rounds whose timers fell due (rule 4)."""
        self._immediate.due(peers, now)

    def roots_heard(self, peer: bytes, now: float) -> None:
        """A membership message from `peer` was taken: an immediate round that waits for
        its roots starts if they came (rule 8)."""
        self._immediate.roots_heard(peer, now)

    def sessions_ended(self, now: float) -> None:
        """After an input that may have ended sessions: schedule the resumption of those
        cut (rule 5) and start those that waited for them (rule 7)."""
        self.sessions_cut(now)
        self._start_waiting(now)

    def _start_waiting(self, now: float) -> None:
        ae = self._anti_entropy
        if not ae.waiting:
            return
        if self._lifecycle.quarantined():  # rule 2: refuse what waited, start nothing
            for waiting in ae.take_waiting():
                abort = ae.refusal(waiting.opening, "the peer is quarantined")
                if abort is not None:
                    self._ctx.send(waiting.peer, abort)
            return
        for peer, messages, completed in ae.ready(self._ctx.view, now):
            for message in messages:
                self._ctx.send(peer, message)
            if completed:
                self._lifecycle.synced()

    def sessions_cut(self, now: float) -> None:
        """Schedule the resumption of the sessions cut since the last call (rule 5)."""
        self._resumption.cut(now)

    def resume_due(self, peers: Iterable[bytes], now: float) -> None:
        """The resumptions whose timers fell due (rule 5)."""
        self._resumption.due(peers, now)

    def repair(self, now: float, peer: bytes | None,
               dataset: str | None) -> RepairStarted | None:
        """Start sessions now (with `peer`, or a random live peer), for one dataset or all;
        returns the peer and the sessions started, or None with no live peer."""
        if self._lifecycle.quarantined():
            raise LocalProtocolError("this node is quarantined: run `gossipnode reseed` first")
        peers = self._ctx.view.peers()
        if peer is not None and peer not in peers:
            raise LocalProtocolError("that member is not a live peer")
        if not peers:
            return None
        chosen = peer if peer is not None else self._ctx.rng.choice(peers)
        datasets = None if dataset is None else (dataset,)
        messages = self._anti_entropy.start_round(chosen, self._ctx.view, now, datasets=datasets)
        for message in messages:
            self._ctx.send(chosen, message)
        return RepairStarted(chosen, tuple(m.session for m in messages))

    def receive(self, sender: bytes, message: object, now: float) -> None:
        """One reconciliation message from `sender` (rules 2 and 3)."""
        if self._lifecycle.quarantined():
            self._ctx.counters["sessions_refused_quarantined"] += 1
            abort = self._anti_entropy.refusal(message, "the peer is quarantined")
            if abort is not None:
                self._ctx.send(sender, abort)
            return
        self._receiving.receive(sender, message, now)
        self._start_waiting(now)

    def _start_sessions(self, peer: bytes, datasets: Sequence[str] | None, now: float, *,
                        skip_agreed: bool = False) -> None:
        """Open sessions with `peer` over `datasets` (all), except over a dataset a session
        with that peer already covers, in either direction (rule 6), and, if `skip_agreed`,
        one whose roots it advertised equal to ours (rule 8)."""
        running = self._anti_entropy.datasets_running(peer)
        wanted = [d for d in (REPLICATED_DATASETS if datasets is None else datasets)
                  if d not in running]
        if len(wanted) < (len(REPLICATED_DATASETS) if datasets is None else len(datasets)):
            self._ctx.counters["sessions_not_doubled"] += 1
        if skip_agreed and self._agreed is not None and wanted:
            agreed = self._agreed(peer, self._immediate.came_alive(peer, -math.inf), now)
            if agreed:
                self._ctx.counters["sessions_skipped_agreed"] += sum(
                    d in agreed for d in wanted)
                wanted = [d for d in wanted if d not in agreed]
        if not wanted:
            return
        for message in self._anti_entropy.start_round(peer, self._ctx.view, now,
                                                      datasets=wanted, stagger=True):
            self._ctx.send(peer, message)
