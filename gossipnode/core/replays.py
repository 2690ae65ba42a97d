"""Replays: a record whose delete was collected, sent again by a member that kept a copy.

Tombstones are collected after `tombstone_grace_s` (lifecycle.py rule 1); a member that
holds neither a record nor its tombstone cannot tell, from the record alone, a delete
collected long ago from a write it never saw. A member that kept the old record (a liar, or
one that missed the delete) could bring a deleted private key back on every member.

Rules:
1. The premise (the one tombstone collection rests on): a record whose version is older than
   the tombstone horizon (wall now - `tombstone_grace_s`, `Lifecycle.horizon_ms`) has reached
   every member that has held its dataset whole since before the horizon, in step (not
   quarantined); else collecting its delete could bring it back by honest members too.
2. So such a member (a *settled* one, rule 3) that holds nothing under a record's key, neither
   the record nor a tombstone, refuses a peer's record older than the horizon: under rule 1
   it is a delete collected and replayed. The same for a push, a handoff and either end of a
   session (admission.py rule 7). A record held at any version is judged as before (an
   update of a held key applies; an older one loses), and local writes are not judged here.
3. Settled in a dataset: this node has held it whole (`ScopeView.holds_whole`: every record of
   it, as an admitted member) since before the horizon, in the current generation, and
   completed its first reconciliation of the generation before the horizon too
   (`Lifecycle.first_synced_ms`). The moment it began to hold each dataset is kept in the
   store's metadata with the generation (so it survives a restart), taken again when it
   holds the dataset again after it stopped (a lost private-keys grant, a revoked
   admission: it missed what was written meanwhile), and dropped by a reseed. A new member, a
   reseeded one, or one that gained a dataset less than the grace period ago is not settled
   in it and takes old records as before: it needs them to fill. (Metadata written before
   this rule existed is missing: the node counts from its first start under the rule.)
4. Not covered: WEP mailboxes. An owner holds only its mailboxes, and placement moves them to
   members that never held them (a mailbox handed to a new owner carries its old records),
   so holding the dataset says nothing of one mailbox.
5. The horizon has no margin for clock skew: it is the one the collection uses on this node,
   so every key whose tombstone this node collected is refused at once when replayed (a
   margin would reopen the window for a record deleted within the margin of its write). A
   writer's clock behind by `s` makes its record look `s` older; its tombstone is collected
   `s` early by the same token, so the premise assumes delivery within the grace period
   less the skew either way (seconds against days by default).
6. What a refused replay does to anti-entropy: nothing is stored, so the refusing member's
   digest stays what its honest peers' are and their sessions still agree. With the member
   that holds the old record the difference stays: each session with it moves that record
   again and refuses it again (bounded: one session per round, the record counted each time
   in `replays_refused` and reported as PeerRefused), and its roots never agree with ours.
   That is the sign to look for: a liar, or, when the premise broke (a partition longer than
   the grace period, whose sides kept syncing among themselves and are not quarantined), a
   side whose old records the other refuses: reseed the smaller side (its deletes would
   have come back otherwise).
7. Containment of what is held (admission.py rule 6): the refusal depends on whether this
   node holds the key, so a push's answer does not tell: a replay refused is acknowledged
   as a held record is (not listed as refused), and a session says nothing of what it took.
   The sender of a handoff then releases the record (handoff.py), which under rule 1 was
   deleted.
"""

from __future__ import annotations

from .authority import ADMIN_DATASETS
from .catalog import REPLICATED_DATASETS
from .context import NodeContext
from .lifecycle import Lifecycle
from .own_view import OwnViewBasis
from .records import Record
from .scopes import ScopeView

__all__ = ["META_HOLDING_SINCE", "ReplayGuard"]

# + dataset name: the generation (8 bytes) and the wall ms (8 bytes) since which this node has
# held the dataset whole (rule 3); empty when it does not.
META_HOLDING_SINCE = "holding_since/"


class ReplayGuard:
    def __init__(self, ctx: NodeContext, lifecycle: Lifecycle) -> None:
        self._ctx = ctx
        self._lifecycle = lifecycle
        self._generation = lifecycle.generation
        self._since: dict[str, int] = {}
        # Holding a dataset whole depends only on the policy and this node's own member
        # view (core/own_view.py).
        self._own = OwnViewBasis()
        for dataset in REPLICATED_DATASETS:
            stored = ctx.store.get_meta(META_HOLDING_SINCE + dataset)
            if stored and int.from_bytes(stored[:8], "big") == self._generation:
                self._since[dataset] = int.from_bytes(stored[8:], "big")
        self.refresh(ctx.view)

    def refresh(self, view: ScopeView) -> None:
        """A new scope view, or a new generation (NodeCore.reseed calls this): note the
        datasets this node began or stopped to hold whole (rule 3)."""
        if self._generation != self._lifecycle.generation:  # a reseed: start over
            self._generation = self._lifecycle.generation
            self._own.forget()
            for dataset in list(self._since):
                self._set(dataset, None)
        if not self._own.changed(view):
            return
        now_ms = self._ctx.wall_ms()
        for dataset in REPLICATED_DATASETS:
            held = _holds_whole(view, dataset)
            if held and dataset not in self._since:
                self._set(dataset, now_ms)
            elif not held and dataset in self._since:
                self._set(dataset, None)

    def replayed(self, record: Record, stored: Record | None) -> bool:
        """Is `record`, from a peer, a collected delete replayed (rule 2)? `stored`: what this
        node holds under its key."""
        if stored is not None:
            return False
        horizon = self._lifecycle.horizon_ms()
        if record.version.wall_ms >= horizon:
            return False
        since = self._since.get(record.dataset)
        first = self._lifecycle.first_synced_ms
        settled = (since is not None and since <= horizon and first is not None
                   and first <= horizon)
        if settled:
            self._ctx.counters["replays_refused"] += 1
        return settled

    def _set(self, dataset: str, since_ms: int | None) -> None:
        if since_ms is None:
            self._since.pop(dataset, None)
            value = b""
        else:
            self._since[dataset] = since_ms
            value = self._generation.to_bytes(8, "big") + since_ms.to_bytes(8, "big")
        self._ctx.store.set_meta(META_HOLDING_SINCE + dataset, value)


def _holds_whole(view: ScopeView, dataset: str) -> bool:
    """Does this node hold every record of `dataset` (rule 3)? Administrative records are held
    by every member, but one not admitted is sent none of them: it holds them whole only
    while admitted."""
    self_id = view.self_id
    if dataset in ADMIN_DATASETS and not view.admitted(self_id):
        return False
    return view.holds_whole(self_id, dataset)
