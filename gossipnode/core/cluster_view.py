"""The cluster's data at a glance: per dataset, which members hold identical data and since
when (what `nodetool describecluster` answers with schema versions).

Rules:
1. Comparable datasets are those whose every holder holds the whole dataset
   (`ScopeView.holds_whole`): administrative records on every member, `all`-scope datasets
   on admitted members, private keys on eligible members. WEP mailboxes never: each owner
   holds its own subset, so their roots differ by design.
2. This node advertises, through the membership (membership/roots.py), the root of each
   comparable dataset it holds itself, to each member only those of the datasets that
   member holds whole in this node's view (`may_hear`): a member never learns the root of
   a dataset it is not granted (private keys to an ineligible one, `all` datasets to one
   not admitted). A member not in the view yet is judged as the view will judge it, so
   the first exchange with a new member carries every root it may hear. `refresh(now)`
   runs after every input that can move a digest or the view; a root that changed dates
   from that `now`.
3. `agreement(now)` groups, per dataset, the members that hold it in THIS node's view (so
   a member not granted private keys is not counted as differing in `private_keys`) by the
   root each advertised. A group's `since` is when its last member reached that root, on
   this node's monotonic clock: since then, at least, they agree. A holder that never
   advertised the dataset is `unknown`; a dead one, or one not heard from within the stale
   horizon (roots.py rule 6), is `stale`, shown with its last root in no group. Members
   that left are not listed, nor are datasets that no member holds, nor those this node
   is not granted (rule 2: it hears no roots of them).
4. Pure: times are `now` as passed in; the shell turns them into wall-clock moments.
5. `agreed_with(peer, heard_since, now)`: the datasets on which a live peer advertised,
   since `heard_since` and within the stale horizon, the root this node advertises now:
   identical data, nothing for a session to move (sync.py rule 8).
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import REPLICATED_DATASETS, Scope
from .catalog import dataset as lookup_dataset
from .context import NodeContext
from .digests import Digests
from .membership import ALIVE, LEFT, SUSPECT
from .own_view import OwnViewBasis
from .placement import private_keys_eligible

__all__ = [
    "COMPARED_DATASETS",
    "ClusterView",
    "DatasetAgreement",
    "RootGroup",
    "RootHolder",
    "StaleRoot",
]

# Datasets whose roots can be compared at all (rule 1).
COMPARED_DATASETS: tuple[str, ...] = tuple(
    name for name in REPLICATED_DATASETS if lookup_dataset(name).scope is not Scope.WEP_PLACEMENT
)


@dataclass(frozen=True, slots=True)
class RootHolder:
    node_id: bytes
    name: str


@dataclass(frozen=True, slots=True)
class RootGroup:
    """Members that advertised the same root: they hold identical data."""

    root: str  # hex of the advertised root prefix
    members: tuple[RootHolder, ...]  # by name
    since: float  # when the last of them reached this root (monotonic, this node's clock)
    includes_self: bool


@dataclass(frozen=True, slots=True)
class StaleRoot:
    holder: RootHolder
    root: str
    heard_at: float  # when its roots last arrived (monotonic)


@dataclass(frozen=True, slots=True)
class DatasetAgreement:
    dataset: str
    groups: tuple[RootGroup, ...]  # the largest first; one group: everyone agrees
    unknown: tuple[RootHolder, ...]  # holders that never advertised this dataset
    stale: tuple[StaleRoot, ...]


class ClusterView:
    def __init__(self, ctx: NodeContext, digests: Digests) -> None:
        self._ctx = ctx
        self._digests = digests
        # (digest changes, view, datasets held whole) of the last refresh: with the same
        # digest changes and held datasets no root can have moved, whatever the view.
        self._basis: tuple[int, object, tuple[str, ...]] | None = None
        # The comparable datasets this node holds whole, worked out again only when the
        # policy or this node's own member view changed (core/own_view.py).
        self._held: tuple[str, ...] = ()
        self._own = OwnViewBasis()
        # What each member may hear of our roots (`may_hear`), and what that depends on:
        # the policy and the member's view (its tags), the same objects until either
        # changes. A new view at every membership change keeps most members' views.
        self._heard: dict[bytes, tuple[object, object, frozenset[str]]] = {}
        ctx.membership.set_roots_audience(self.may_hear)

    def may_hear(self, peer: bytes) -> frozenset[str]:
        """The datasets whose roots `peer` may hear from this node: those it holds whole in
        this node's view (rule 2), worked out again only when the policy or the member's
        own view changed. A member not in the view yet (pending, or confirmed by the
        message being answered) is judged as the view will judge it: private keys by the
        tags it signed and the policy, the rest by the policy alone."""
        view = self._ctx.view
        member = view.members.get(peer)
        if member is not None:
            cached = self._heard.get(peer)
            if cached is not None and cached[0] is view.policy and cached[1] is member:
                return cached[2]
            heard = frozenset(name for name in COMPARED_DATASETS
                              if view.holds_whole(peer, name))
            self._heard[peer] = (view.policy, member, heard)
            return heard
        tags = self._ctx.membership.claimed_tags(peer)
        return frozenset(
            name for name in COMPARED_DATASETS
            if (view.holds_whole(peer, name)
                if lookup_dataset(name).scope is not Scope.PRIVATE_KEY_ELIGIBLE
                else tags is not None and private_keys_eligible(peer, tags, view.policy))
        )

    def refresh(self, now: float) -> None:
        """Advertise this node's roots as they are now (rule 2). Cheap when neither the
        digests nor the view changed since the last call (most inputs: probes, acks), and
        when a new view left the datasets this node holds whole as they were (most
        membership changes)."""
        view = self._ctx.view
        changes = self._digests.changes
        basis = self._basis
        if basis is not None and basis[0] == changes and basis[1] is view:
            return
        held = self._held_whole()
        self._basis = (changes, view, held)
        if basis is not None and basis[0] == changes and basis[2] == held:
            return
        full = self._digests.full
        roots = {name: full[name].root for name in held if name in full}
        self._ctx.membership.set_roots(roots, now)

    def _held_whole(self) -> tuple[str, ...]:
        """The comparable datasets this node holds whole, worked out again only when the
        policy or this node's own member view changed."""
        view = self._ctx.view
        if self._own.changed(view):
            self._held = tuple(name for name in COMPARED_DATASETS
                               if view.holds_whole(view.self_id, name))
        return self._held

    def agreed_with(self, peer: bytes, heard_since: float, now: float) -> frozenset[str]:
        """The datasets whose roots `peer` and this node hold in common (rule 5)."""
        membership = self._ctx.membership
        roots = membership.advertised_roots_of(peer)
        if (roots is None or not self._ctx.view.live(peer)
                or roots.heard_at < max(heard_since, now - membership.roots_stale_after_s())):
            return frozenset()
        local = membership.local_roots()
        return frozenset(
            name for name, (root, _) in roots.roots.items()
            if name in local and local[name][0] == root
        )

    def agreement(self, now: float) -> tuple[DatasetAgreement, ...]:
        """Per comparable dataset, the members grouped by root (rule 3)."""
        ctx = self._ctx
        membership = ctx.membership
        view = ctx.view
        members = {m.node_id: m for m in membership.members()}
        advertised = membership.advertised_roots()
        horizon = now - membership.roots_stale_after_s()
        local = membership.local_roots()
        result = []
        held = self._held_whole()
        for dataset in COMPARED_DATASETS:
            if dataset not in held:
                continue  # not granted to this node: its holders do not tell it (rule 2)
            by_root: dict[bytes, list[tuple[RootHolder, float]]] = {}
            unknown, stale = [], []
            for node_id, member in sorted(members.items(), key=lambda item: item[1].name):
                if member.state == LEFT or not view.holds_whole(node_id, dataset):
                    continue
                holder = RootHolder(node_id, member.name)
                if node_id == ctx.node_id:
                    entry, heard_at = local.get(dataset), now
                else:
                    roots = advertised.get(node_id)
                    entry = None if roots is None else roots.roots.get(dataset)
                    heard_at = None if roots is None else roots.heard_at
                live = member.state in (ALIVE, SUSPECT) or node_id == ctx.node_id
                if entry is None or heard_at is None:
                    if live:  # a dead member that never told us is simply gone
                        unknown.append(holder)
                elif heard_at < horizon or not live:
                    stale.append(StaleRoot(holder, entry[0].hex(), heard_at))
                else:
                    by_root.setdefault(entry[0], []).append((holder, entry[1]))
            groups = [
                RootGroup(
                    root.hex(),
                    tuple(holder for holder, _ in holders),
                    max(since for _, since in holders),
                    any(holder.node_id == ctx.node_id for holder, _ in holders),
                )
                for root, holders in by_root.items()
            ]
            groups.sort(key=lambda g: (-len(g.members), not g.includes_self, g.root))
            if not (groups or unknown or stale):
                continue  # nobody holds it (private keys with nobody granted them)
            result.append(DatasetAgreement(dataset, tuple(groups), tuple(unknown),
                                           tuple(stale)))
        return tuple(result)
