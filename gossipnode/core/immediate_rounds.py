"""Immediate rounds with a peer that comes (back) alive (sync.py rule 4), so that a returning
member catches up in seconds rather than at the next regular round.

1. Both ends see the same return, so one end is enough: the end with the lower node id starts
   at once, the other waits `REVIVED_GRACE_S` and starts only if no session with that peer ran
   meanwhile, nor completed since the return (up to `REVIVED_NOTICE_SKEW_S` before we saw it).
2. At most one such round per peer per `REVIVED_PEER_GAP_S`, and immediate rounds with at most
   `REVIVED_ROUNDS_PER_INTERVAL_MAX` distinct peers per `anti_entropy_interval_s` for the whole
   node; the regular rounds cover whoever was left out.
3. A return brings the node's next regular round forward to `REVIVED_FOLLOW_UP_S` after it.
4. When each peer last came alive is kept (`came_alive`): the scheduler skips a dataset whose
   root the peer advertised equal to ours since then (sync.py rule 8).
5. Roots first: a round due with a peer whose roots we have not heard since it came alive
   asks it for them (a ping carrying ours, answered by an ack carrying its own:
   membership/roots.py rule 7) and starts when they arrive (`roots_heard`), or after
   `ROOTS_WAIT_S` without them. A return by a false suspicion refuted, or by a partition
   healed, thus opens no session over data that agrees, while data that differs is
   reconciled one round trip later. Only an asked peer's roots end the wait early.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from .anti_entropy import AntiEntropy
from .context import NodeContext
from .lifecycle import Lifecycle

__all__ = [
    "REVIVED_FOLLOW_UP_S",
    "REVIVED_GRACE_S",
    "REVIVED_NOTICE_SKEW_S",
    "REVIVED_PEER_GAP_S",
    "REVIVED_ROUNDS_PER_INTERVAL_MAX",
    "ROOTS_WAIT_S",
    "TIMER_REVIVED",
    "AskRoots",
    "ImmediateRounds",
    "RootsHeardAt",
]

# The node's timer key of the immediate round with a peer that came alive: ("revived", peer).
TIMER_REVIVED = "revived"
# The higher-id end of a return waits this long for the lower-id end's session (rule 1):
# a few LAN round trips, the time for that session's opening to arrive. It need not cover
# the time the lower end takes to notice the return: a lower end that notices later finds
# the session running and opens none (sync.py rule 6). A partition often ends with only one
# end having declared the other dead (the smaller side is slower to), and then the higher end
# is the only one to act: a longer wait is time the healed cluster spends apart.
REVIVED_GRACE_S = 0.25
# How much earlier than this end the other may notice a return (rule 1): a session that
# completed that long before we noticed it still covered it. Membership spreads a return
# within a few gossip rounds; a loaded host notices later.
REVIVED_NOTICE_SKEW_S = 1.0
# The next regular round falls at most this long after a return (rule 3): the immediate
# sessions of a healed partition take about a second on a LAN, and records they bring are
# not pushed onwards (sync.py rule 3), so a write that reached only one member of a side, and
# that the other side took from it, reaches its siblings in this round, not an interval later.
REVIVED_FOLLOW_UP_S = 1.5
# Distinct peers a node has immediate rounds with per anti_entropy_interval_s (rule 2):
# after a cluster-wide restart each node reconciles with this many returning peers at once
# and leaves the rest to its regular rounds, so that n returns cost O(1) sessions per node,
# not O(n).
REVIVED_ROUNDS_PER_INTERVAL_MAX = 4
# One immediate round per peer per this (rule 2). A restart takes longer than this and
# membership notices a return at most about once per probe interval, so a faster return is
# a member flapping between alive and dead: one round covers it. Not the anti-entropy
# interval: a member restarted twice within it must be caught up at once both times.
REVIVED_PEER_GAP_S = 1.0
# The longest an immediate round waits for the roots it asked for (rule 5): about the probe
# timeout (0.5 s by default), after which a probe's ack counts as lost too. The answer takes
# a round trip, milliseconds on a LAN; on a host so loaded that it takes longer, the round
# starts anyway and opens every dataset, as it did before it asked: the wait can delay a
# catch-up by this much at most, never stop it.
ROOTS_WAIT_S = 0.5

# (peer, now): open the scheduler's sessions of a round with `peer` (every dataset, less
# those a session with it covers or whose roots it advertised equal to ours: sync.py rules
# 6 and 8).
StartRound = Callable[[bytes, float], None]
# (at): run the next regular round at `at` if it was later (rule 3).
BringForward = Callable[[float], None]
# (peer, now): ask `peer` for its roots (rule 5); False when nothing was sent (it may hear
# none of ours, so it would not answer with its own).
AskRoots = Callable[[bytes, float], bool]
# (peer): when `peer`'s own roots last arrived, or None.
RootsHeardAt = Callable[[bytes], float | None]


class ImmediateRounds:
    def __init__(self, ctx: NodeContext, lifecycle: Lifecycle, anti_entropy: AntiEntropy,
                 start_round: StartRound, bring_forward: BringForward,
                 ask_roots: AskRoots, roots_heard_at: RootsHeardAt) -> None:
        self._ctx = ctx
        self._lifecycle = lifecycle
        self._anti_entropy = anti_entropy
        self._start_round = start_round
        self._bring_forward = bring_forward
        self._ask_roots = ask_roots
        self._roots_heard_at = roots_heard_at
        # Peers whose round waits for the roots asked of them (rule 5): peer -> when asked.
        self._asked: dict[bytes, float] = {}
        # Per peer, when it last came alive (pending) or had its immediate round; and the
        # node's recent immediate rounds, (time, peer), oldest first (rule 2).
        self._revived_at: dict[bytes, float] = {}
        self._recent: deque[tuple[float, bytes]] = deque()

    def came_alive(self, peer: bytes, default: float) -> float:
        """When `peer` last came alive as far as this node knows (rule 4), else `default`."""
        return self._revived_at.get(peer, default)

    def revived(self, peers: Iterable[bytes], now: float) -> None:
        """These peers came (back) alive: schedule their immediate rounds (rule 1)."""
        for peer in peers:
            if peer == self._ctx.node_id:
                continue
            last = self._revived_at.get(peer)
            if last is not None and now - last < REVIVED_PEER_GAP_S:
                continue
            self._revived_at[peer] = now
            self._asked.pop(peer, None)  # a new return: its roots are asked for afresh
            delay = 0.0 if self._ctx.node_id < peer else REVIVED_GRACE_S
            self._ctx.timers.set((TIMER_REVIVED, peer), now + delay)
            self._bring_forward(now + REVIVED_FOLLOW_UP_S)  # rule 3

    def due(self, peers: Iterable[bytes], now: float) -> None:
        """The immediate rounds whose timers fell due (rules 1, 2 and 5): a round due, or
        the end of a wait for roots."""
        for peer in peers:
            waited = self._asked.pop(peer, None) is not None
            self._run(peer, now, waited)

    def roots_heard(self, peer: bytes, now: float) -> None:
        """A message from `peer` was taken: if its round waits for its roots and they came,
        start it now (rule 5)."""
        if peer not in self._asked or not self._fresh_roots(peer):
            return
        del self._asked[peer]
        self._ctx.timers.cancel((TIMER_REVIVED, peer))
        self._ctx.counters["revived_rounds_roots_heard"] += 1
        self._run(peer, now, waited=True)

    def _fresh_roots(self, peer: bytes) -> bool:
        heard_at = self._roots_heard_at(peer)
        return heard_at is not None and heard_at >= self._revived_at.get(peer, heard_at)

    def _run(self, peer: bytes, now: float, waited: bool) -> None:
        ctx = self._ctx
        since = self._revived_at.get(peer, now)
        if (not ctx.view.live(peer) or self._lifecycle.quarantined()
                or self._anti_entropy.sessions_running(peer)):
            return
        # A session that completed since the return (the other end noticed it first,
        # up to a skew earlier) leaves nothing for this round to do.
        synced_at = self._anti_entropy.peer_sync(peer).synced_at
        if synced_at is not None and synced_at >= since - REVIVED_NOTICE_SKEW_S:
            return
        if not waited:  # counted once, when first due (the wait for roots is its part)
            recent = self._recent
            interval = ctx.config.replication.anti_entropy_interval_s
            while recent and now - recent[0][0] >= interval:
                recent.popleft()
            partners = {partner for _, partner in recent}
            if peer not in partners and len(partners) >= REVIVED_ROUNDS_PER_INTERVAL_MAX:
                ctx.counters["revived_rounds_deferred"] += 1
                return
            recent.append((now, peer))
            ctx.counters["revived_rounds"] += 1
            if not self._fresh_roots(peer) and self._ask_roots(peer, now):  # rule 5
                self._asked[peer] = now
                ctx.timers.set((TIMER_REVIVED, peer), now + ROOTS_WAIT_S)
                return
        self._start_round(peer, now)
