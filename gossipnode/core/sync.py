"""Anti-entropy scheduling: when this node reconciles, with whom, and what it does with the
records a session brings.

Rules:
1. Every `anti_entropy_interval_s` (the first after a random part of one, so that nodes
   started together do not run in step) one random live peer is reconciled over every
   dataset both share. Private keys and mailboxes are shared with only some peers, likely
   not the one drawn: they are reconciled with partners of their own in the same round
   (an eligible peer for private keys; up to PAIR_PARTNERS_PER_ROUND mailbox partners,
   round-robin), so they are repaired as often as the rest.
2. A quarantined node neither starts nor answers sessions; it tells the peer with an abort
   rather than leave the peer's session slot to time out.
3. Received records pass admission and the receiver's own scope check before they are
   applied (and are not pushed onwards: every peer reconciles for itself); a completed
   session marks the node synced (the tombstone horizon restarts).
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
from .records import Record
from .resumption import RESUME_AFTER_S, RESUMES_MAX, TIMER_RESUME, Resumption
from .scopes import PRIVATE_KEYS, WEB_MESSENGER

# The constants of rules 4, 5 and 9 are named here too: what the node and its tests see.
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

# Mailbox partners reconciled per anti-entropy round: every partner is reached within
# ceil(partners / this) rounds, at one round trip per partner whose digests agree.
PAIR_PARTNERS_PER_ROUND = 8
TIMER_ANTI_ENTROPY = "anti_entropy"

Apply = Callable[[list[Record], bytes | None, float], object]
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
        self._admission = admission
        self._apply = apply
        self._rotation = 0
        self._next_round = math.inf  # when TIMER_ANTI_ENTROPY is set for
        self._immediate = ImmediateRounds(  # rule 4
            ctx, lifecycle, anti_entropy,
            lambda peer, now: self._start_sessions(peer, None, now, skip_agreed=True),
            self._bring_forward, ask_roots or ctx.membership.ask_roots,
            ctx.membership.roots_heard_at)
        self._resumption = Resumption(ctx, lifecycle, anti_entropy,  # rule 5
                                      self._start_sessions)
        self._gained = GainedRounds(ctx, anti_entropy, self._bring_forward,  # rule 9
                                    lambda: self._next_round)
        self._skip_agreed = True  # false for the round that follows a reseed (rule 8)

    def start(self, now: float) -> None:
        interval = self._ctx.config.replication.anti_entropy_interval_s
        self._set_round(now + self._ctx.rng.uniform(0.5, 1.0) * interval)

    def reseeded(self, now: float) -> None:
        """The replicated data was discarded and the view taken anew: pull afresh at once,
        the grants first when the view no longer admits this node (rule 9)."""
        self._gained.reseeded()
        self._skip_agreed = False
        self._set_round(now)

    def view_changed(self, now: float) -> None:
        """A new scope view was taken: a round at once for what it gives (rule 9)."""
        self._gained.view_changed(now)

    def round(self, now: float) -> bool:
        """One anti-entropy round (rule 1); re-arms its timer. False when it did not run
        (quarantined, or no live peer)."""
        ctx = self._ctx
        self._set_round(now + ctx.config.replication.anti_entropy_interval_s)
        self._gained.round_ran(now)  # rule 9: a follow-up
        if self._lifecycle.quarantined():
            ctx.counters["anti_entropy_skipped_quarantined"] += 1
            return False
        view = ctx.view
        # Only admitted peers share anything with us (admission: scopes.py rule 3).
        peers = [p for p in view.peers() if view.admitted(p)]
        pulled = self._gained.pull_grants(now)  # rule 9: after a reseed, from any live peer
        if not peers:
            return pulled
        skip_agreed, self._skip_agreed = self._skip_agreed, True
        peer = ctx.rng.choice(peers)
        self._start_sessions(peer, None, now, skip_agreed=skip_agreed)
        if view.shared_scope(peer, PRIVATE_KEYS) is None:
            eligible = [p for p in peers if view.shared_scope(p, PRIVATE_KEYS)]
            if eligible:
                self._start_sessions(ctx.rng.choice(eligible), (PRIVATE_KEYS,), now,
                                     skip_agreed=skip_agreed)
        partners = [p for p in self._anti_entropy.digests.pair_partners()
                    if p != peer and p in peers]
        for partner in self._rotate(partners, PAIR_PARTNERS_PER_ROUND):
            self._start_sessions(partner, (WEB_MESSENGER,), now)
        return True

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
        ctx = self._ctx
        if self._lifecycle.quarantined():
            ctx.counters["sessions_refused_quarantined"] += 1
            abort = self._anti_entropy.refusal(message, "the peer is quarantined")
            if abort is not None:
                ctx.send(sender, abort)
            return

        def absorb(received: list[Record]) -> None:
            accepted = []
            held = ctx.store.get_many((r.dataset, r.key) for r in received)  # read at once
            for record in received:
                stored = held.get((record.dataset, record.key))
                if stored == record:
                    continue  # held exactly (another session or a push brought it): no-op
                reason = self._admission.refusal(sender, record, stored)
                if reason is None and ctx.view.holds(ctx.node_id, record.dataset, record.key):
                    accepted.append(record)
                elif reason is not None:
                    ctx.refuse(sender, f"{record.dataset}/{record.key}: {reason}")
            self._apply(accepted, sender, now)

        replies, _, completed = self._anti_entropy.receive(sender, message, ctx.view, now,
                                                           absorb=absorb)
        for reply in replies:
            ctx.send(sender, reply)
        if completed:
            self._lifecycle.synced()
        self._start_waiting(now)

    def _set_round(self, at: float) -> None:
        self._next_round = at
        self._ctx.timers.set(TIMER_ANTI_ENTROPY, at)

    def _bring_forward(self, at: float) -> None:
        """Run the next regular round at `at` if it was later (rule 4: a follow-up)."""
        if self._next_round > at:
            self._set_round(at)

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

    def _rotate(self, items: list[bytes], count: int) -> list[bytes]:
        """The next `count` items, round-robin across rounds (all of them if fewer)."""
        if len(items) <= count:
            return items
        start = self._rotation % len(items)
        self._rotation += count
        return [items[(start + i) % len(items)] for i in range(count)]
