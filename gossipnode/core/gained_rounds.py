"""Rounds for what a new scope view gives this node (sync.py rule 9), so that a member admitted,
granted private keys or WEP, or reseeded fills in seconds rather than at the next regular
round, an `anti_entropy_interval_s` away.

1. What this node holds, as far as its view says (`held_datasets`): the replicated datasets
   it may hold records of, administrative ones aside (every member takes those, admitted or
   not: scopes.py rule 3). `all`-scope datasets once admitted; private keys once eligible
   (its tag and, under administrators, the grant); WEP mailboxes once WEP replication is on
   and it runs WEP (with the grant, under administrators).
2. A new view that adds a dataset to that set brings the node's next regular round forward to
   now: that round reaches a random admitted peer over every dataset, an eligible partner for
   private keys and its mailbox partners (regular_rounds.py rule 1), which is what the node
   gained: of the mailboxes, those it owns with that peer (a node that holds none yet has no
   mailbox partners); one whose owner it became in place of another comes by that owner's
   handoff (handoff.py rule 1). A view that gains nothing starts nothing.
3. Bounded: at most one such round per `GAINED_ROUND_GAP_S`. A gain within the gap brings
   the round to the end of the gap instead, so that a grant that follows an admission at
   once is not left for the regular round, and grants that come and go make one round per
   gap, not one per view. A gain when the next round is set for no later than that already
   needs nothing more: that round covers it.
4. A follow-up: the round after the one a gain brought forward falls `GAINED_FOLLOW_UP_S`
   after it (if it was later). This node learns its gain before some peers learn it (its own
   tag spreads by gossip; a grant's push to a peer may be lost and sent again), and a peer
   that does not know yet refuses the session over the dataset; the follow-up, which skips
   what agrees (sync.py rule 8), finds it knowing.
5. A reseed forgets the grants with the rest of the replicated data (`reseeded`): what the
   grants give once they are learned again counts as gained (rule 2). Until this node is
   admitted again by its own view, its rounds pull the administrative records from a random
   live peer in sessions where it offers nothing ("receive": scopes.py rule 3), since its
   view admits no peer to anything else; the round that follows the reseed
   (`SyncScheduler.reseeded`) thus brings the grants, and the admission they carry the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .anti_entropy import AntiEntropy
from .authority import ADMIN_DATASETS
from .catalog import DATASETS, Dataset, Scope
from .context import NodeContext
from .own_view import OwnViewBasis
from .scopes import ScopeView

__all__ = ["GAINED_FOLLOW_UP_S", "GAINED_ROUND_GAP_S", "GainedRounds", "held_datasets"]

# One round for a gain per this (rule 3): the sessions of a round over data that differs take
# about a second on a LAN; grants flapping faster than this cost one round per gap.
GAINED_ROUND_GAP_S = 1.0
# The follow-up round falls this long after the round a gain brought forward (rule 4): a tag
# spreads to every member within a few gossip rounds on a LAN, a push lost is sent again
# after `push_retry_s` (2 s by default) and often reaches the peer by another member before.
GAINED_FOLLOW_UP_S = 1.5

# (at): run the next regular round at `at` if it was later.
BringForward = Callable[[float], None]
# (): when the next regular round is set for.
NextRound = Callable[[], float]


def held_datasets(view: ScopeView) -> frozenset[str]:
    """The replicated datasets the view lets this node hold, administrative ones aside
    (rule 1)."""
    me = view.self_id
    if not view.admitted(me):
        return frozenset()

    def held(dataset: Dataset) -> bool:
        if dataset.scope is Scope.PRIVATE_KEY_ELIGIBLE:
            return view.private_keys_eligible(me)
        if dataset.scope is Scope.WEP_PLACEMENT:
            return view.shared_scope(me, dataset.name) is not None
        return dataset.scope is Scope.ALL

    return frozenset(dataset.name for dataset in DATASETS if held(dataset))


class GainedRounds:
    def __init__(self, ctx: NodeContext, anti_entropy: AntiEntropy,
                 bring_forward: BringForward, next_round: NextRound) -> None:
        self._ctx = ctx
        self._anti_entropy = anti_entropy
        self._bring_forward = bring_forward
        self._next_round = next_round
        self._held = held_datasets(ctx.view)
        # `held_datasets` depends only on the policy and this node's own member view: it is
        # worked out again only when either changed (core/own_view.py).
        self._own = OwnViewBasis()
        self._own.changed(ctx.view)
        self._last = -math.inf  # when the last round for a gain was set for (rule 3)
        self._follow_up: float | None = None  # when the follow-up round falls (rule 4)
        self._reseeded = False

    def view_changed(self, now: float) -> None:
        """A new view was taken: bring the round forward if it gives something new (rule 2)."""
        held = self._held_by_view()
        gained, self._held = held - self._held, held
        if self._reseeded and self._ctx.view.admitted(self._ctx.node_id):
            self._reseeded = False
        if not gained:
            return
        at = max(now, self._last + GAINED_ROUND_GAP_S)
        self._follow_up = at + GAINED_FOLLOW_UP_S  # rule 4
        if self._next_round() <= at:  # rule 3: the round set for then covers it
            return
        self._last = at
        self._ctx.counters["gained_rounds"] += 1
        self._bring_forward(at)

    def _held_by_view(self) -> frozenset[str]:
        """`held_datasets` of the current view, worked out again only when the policy or
        this node's own member view changed (all it depends on)."""
        view = self._ctx.view
        return held_datasets(view) if self._own.changed(view) else self._held

    def round_ran(self, now: float) -> None:
        """A regular round ran (and set the next an interval on): a follow-up owed falls
        `GAINED_FOLLOW_UP_S` after the round a gain brought forward (rule 4)."""
        follow_up, self._follow_up = self._follow_up, None
        if follow_up is not None and follow_up > now:
            self._bring_forward(follow_up)

    def reseeded(self) -> None:
        """The replicated data was discarded, grants included (rule 5): what this node holds
        is what the view taken after it says, and until it is admitted again its rounds pull
        the administrative records."""
        view = self._ctx.view
        self._held = held_datasets(view)
        self._own.changed(view)
        self._reseeded = not self._ctx.view.admitted(self._ctx.node_id)

    def pull_grants(self, now: float) -> bool:
        """In a round: after a reseed, until admitted again, pull the administrative records
        from a random live peer (rule 5); True when sessions were opened for them."""
        ctx = self._ctx
        peers = ctx.view.peers()
        if not self._reseeded or not peers:
            return False
        source = ctx.rng.choice(peers)
        for message in self._anti_entropy.start_round(source, ctx.view, now,
                                                      sorted(ADMIN_DATASETS), pull=True):
            ctx.send(source, message)
        return True
