"""The regular anti-entropy rounds and their timer (sync.py rule 1), the floor under every
other round: whatever an immediate round, a resumption or a gained round leaves out, the next
regular round covers.

Rules:
1. Every `anti_entropy_interval_s` (the first after a random part of one, so that nodes
   started together do not run in step) one random live peer is reconciled over every
   dataset both share. Private keys and mailboxes are shared with only some peers, likely
   not the one drawn: they are reconciled with partners of their own in the same round
   (an eligible peer for private keys; up to PAIR_PARTNERS_PER_ROUND mailbox partners,
   round-robin), so they are repaired as often as the rest.
2. The round's timer, TIMER_ANTI_ENTROPY, is re-armed an interval on by each round; a return
   (sync.py rule 4) and a gain (sync.py rule 9) bring it forward (`bring_forward`), never
   back; a reseed brings it to now, and the first round after it with admitted peers skips
   no dataset as agreed (sync.py rule 8).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .anti_entropy import AntiEntropy
from .context import NodeContext
from .gained_rounds import GainedRounds
from .lifecycle import Lifecycle
from .scopes import PRIVATE_KEYS, WEB_MESSENGER

__all__ = ["PAIR_PARTNERS_PER_ROUND", "TIMER_ANTI_ENTROPY", "RegularRounds"]

# Mailbox partners reconciled per anti-entropy round: every partner is reached within
# ceil(partners / this) rounds, at one round trip per partner whose digests agree.
PAIR_PARTNERS_PER_ROUND = 8
TIMER_ANTI_ENTROPY = "anti_entropy"

# (peer, datasets or None for all, now, *, skip_agreed=False): open the scheduler's sessions
# (sync.py rules 6 to 8).
StartSessions = Callable[..., None]


class RegularRounds:
    def __init__(self, ctx: NodeContext, lifecycle: Lifecycle, anti_entropy: AntiEntropy,
                 gained: GainedRounds, start_sessions: StartSessions) -> None:
        self._ctx = ctx
        self._lifecycle = lifecycle
        self._anti_entropy = anti_entropy
        self._gained = gained
        self._start_sessions = start_sessions
        self._rotation = 0
        self.next_round = math.inf  # when TIMER_ANTI_ENTROPY is set for
        self._skip_agreed = True  # false for the round that follows a reseed (rule 2)

    def start(self, now: float) -> None:
        interval = self._ctx.config.replication.anti_entropy_interval_s
        self._set_round(now + self._ctx.rng.uniform(0.5, 1.0) * interval)

    def reseeded(self, now: float) -> None:
        """The replicated data was discarded: a round at once, skipping nothing (rule 2)."""
        self._skip_agreed = False
        self._set_round(now)

    def round(self, now: float) -> bool:
        """One anti-entropy round (rule 1); re-arms its timer. False when it did not run
        (quarantined, or no live peer)."""
        ctx = self._ctx
        self._set_round(now + ctx.config.replication.anti_entropy_interval_s)
        self._gained.round_ran(now)  # sync.py rule 9: a follow-up
        if self._lifecycle.quarantined():
            ctx.counters["anti_entropy_skipped_quarantined"] += 1
            return False
        view = ctx.view
        # Only admitted peers share anything with us (admission: scopes.py rule 3).
        peers = [p for p in view.peers() if view.admitted(p)]
        pulled = self._gained.pull_grants(now)  # sync.py rule 9: after a reseed, any live peer
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

    def bring_forward(self, at: float) -> None:
        """Run the next round at `at` if it was later (rule 2)."""
        if self.next_round > at:
            self._set_round(at)

    def _set_round(self, at: float) -> None:
        self.next_round = at
        self._ctx.timers.set(TIMER_ANTI_ENTROPY, at)

    def _rotate(self, items: list[bytes], count: int) -> list[bytes]:
        """The next `count` items, round-robin across rounds (all of them if fewer)."""
        if len(items) <= count:
            return items
        start = self._rotation % len(items)
        self._rotation += count
        return [items[(start + i) % len(items)] for i in range(count)]
