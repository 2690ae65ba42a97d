"""Applying: how records enter the store, and what follows a new scope view.

Rules:
1. Durable before visible (rule 1 of core/node.py): `apply` commits to the store first,
   then indexes the winners in the digests, then (for records this node took from a
   client or a push) pushes what is replicated onwards, never back to its source.
2. A dataset with a merge function merges two live versions instead of last-writer-wins
   (merging.py); a local write that merges to the stored value writes nothing.
3. A new administrative record reloads the policy before anything is pushed, so that the
   push goes to the members that may hold the records now (and tells the membership which
   members are forced out); a member admitted here gets
   the administrative records at once; private keys of a writer whose grant was revoked
   are re-signed by this node when it may hold them (authorization.py rules 5 and 6).
4. Records a reconciliation brought are stored and indexed but not pushed onwards: every
   other peer reconciles on its own (at once, when it comes back from a partition), and
   forwarding them would send each to up to `push_fanout` peers that mostly hold it
   already, a storm of duplicates right after a heal.
5. A new scope view (`view_changed`): pushes and sessions with members that are gone are
   dropped, sessions whose scope the view narrowed end (anti_entropy.py rule 10), the pair
   digests follow moved mailboxes, and a handoff runs when this node lost eligibility,
   moved mailboxes, or still has records waiting for their holders; and the datasets this
   node holds whole are noted for the refusal of replays (replays.py rule 3); the scheduler
   is told last (`view_taken`), and starts a round at once for a dataset the view gives this
   node (sync.py rule 9).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..config import NodeConfig
from .admission import Admission
from .anti_entropy import AntiEntropy
from .authority import Authority
from .authorization import admin_records, load_policy, newly_admitted, revoked_writers
from .catalog import dataset as lookup_dataset
from .cluster_view import ClusterView
from .context import NodeContext
from .errors import LocalProtocolError
from .handoff import Handoff
from .member_views import MemberViews
from .merging import ValueMerge, resolver
from .placement import POLICY_DATASET
from .records import Record
from .replication import Replication

__all__ = ["Applying", "Write"]

# (dataset, key, value); value None is a delete.
Write = tuple[str, str, bytes | None]


class Applying:
    def __init__(self, ctx: NodeContext, config: NodeConfig, *, views: MemberViews,
                 admission: Admission, replication: Replication, handoff: Handoff,
                 anti_entropy: AntiEntropy, cluster_view: ClusterView,
                 authority: Authority, decode_value: Callable[[bytes], Mapping[str, Any]],
                 merges: Mapping[str, ValueMerge],
                 drain_membership: Callable[[float], None],
                 view_taken: Callable[[float], None]) -> None:
        """`drain_membership(now)`: the node's own, run after a new policy told the
        membership which members are forced out; `view_taken(now)`: told of every new
        scope view, once this part has taken it (rule 5)."""
        self._ctx = ctx
        self._config = config
        self._views = views
        self._admission = admission
        self._replication = replication
        self._handoff = handoff
        self._anti_entropy = anti_entropy
        self._digests = anti_entropy.digests
        self._cluster_view = cluster_view
        self._drain_membership = drain_membership
        self._view_taken = view_taken
        self._authority = authority
        self._decode_value = decode_value
        self.merges = dict(merges)

    def write_many(self, writes: Sequence[Write],
                   now: float) -> list[Record | LocalProtocolError]:
        """Local writes, checked and stamped by the admission, committed together; per
        write the record written or the LocalProtocolError that refused it."""
        results: list[Record | LocalProtocolError] = []
        for dataset, key, value in writes:
            try:
                results.append(self._admission.prepare(dataset, key, value))
            except LocalProtocolError as error:
                results.append(error)
        accepted = [r for r in results if isinstance(r, Record)]
        winners = self.apply(accepted, None, now) if accepted else []
        if self.merges:  # a merged write stores the merge (or nothing new): report that
            # What the batch stored is what `apply` returned (the last winner of a key is
            # the one stored); a write that merged to the stored value left that in place.
            stored = {(r.dataset, r.key): r for r in winners}
            store = self._ctx.store
            results = [stored.get((r.dataset, r.key)) or store.get(r.dataset, r.key) or r
                       if isinstance(r, Record) and r.dataset in self.merges else r
                       for r in results]
        return results

    def resign(self, records: list[Record], now: float) -> int:
        """Write `records` anew under this node's signature (authorization.py rules 5, 6)."""
        results = self.write_many([(r.dataset, r.key, r.value) for r in records], now)
        self._ctx.counters["private_keys_resigned"] += len(records)
        return sum(isinstance(result, Record) for result in results)

    def apply_synced(self, records: list[Record], source: bytes | None,
                     now: float) -> list[Record]:
        """Records a reconciliation brought (rule 4)."""
        return self.apply(records, source, now, forward=False)

    def apply(self, records: list[Record], source: bytes | None, now: float, *,
              forward: bool = True) -> list[Record]:
        """Store, index, and push onwards what won (rules 1 to 3), unless not `forward`.
        Returns the winners."""
        ctx, store = self._ctx, self._ctx.store
        if self.merges:
            resolve = resolver(self.merges, self._config.limits, local=source is None)
            changes = store.apply_changes(records, resolve)
        else:
            changes = store.apply_changes(records)
        if not changes:
            return []
        winners = [record for _, record in changes]
        self._digests.on_applied(changes, ctx.view)
        self._cluster_view.refresh(now)
        ctx.counters["records_applied"] += len(winners)
        before, before_view = self._views.policy, ctx.view
        if any(r.dataset == POLICY_DATASET for r in winners):
            self._views.policy = load_policy(store, self._authority, self._decode_value)
            ctx.membership.set_force_left(self._views.policy.force_left, now)
            ctx.membership.admission_changed(now)
            self._drain_membership(now)
            self.view_changed(now)
            if source is None:  # admitted here: tell the newcomer what it needs to know
                for peer in newly_admitted(before_view, ctx.view):
                    self._replication.start(peer, admin_records(store, self._authority), now)
        if forward:
            replicated = [r for r in winners if lookup_dataset(r.dataset).replicated]
            self._replication.push(replicated, exclude=source, now=now, received=records)
        revoked = revoked_writers(before, self._views.policy)
        if revoked and ctx.view.private_keys_eligible(ctx.node_id):
            self.resign([r for r in store.replicated("private_keys")
                         if r.version.origin in revoked], now)
        return winners

    def view_changed(self, now: float, *, placement: bool = True,
                     gone: Sequence[bytes] = ()) -> None:
        """Take a new scope view (rule 5). `placement`: mailbox owners may have moved;
        `gone`: members no longer alive or suspect."""
        ctx = self._ctx
        was_eligible = ctx.view.private_keys_eligible(ctx.node_id)
        ctx.view = self._views.view()
        self._admission.replays.refresh(ctx.view)  # replays.py rule 3
        for peer in gone:
            self._replication.pushes.drop_peer(peer)
            self._anti_entropy.abandon_peer(peer, "the member is gone")
        # Containment (Invariant 2): a session's ranges speak of the records of its scope,
        # which no check of the records sent covers; a revoked grant ends it at once.
        for peer, abort in self._anti_entropy.rescope(ctx.view):
            ctx.send(peer, abort)
        moved = placement and self._digests.view_changed(ctx.view)
        lost_eligibility = was_eligible and not ctx.view.private_keys_eligible(ctx.node_id)
        if lost_eligibility or self._handoff.waiting or moved:
            self._handoff.run(now)
        self._cluster_view.refresh(now)  # what this node holds whole may have changed
        self._view_taken(now)
