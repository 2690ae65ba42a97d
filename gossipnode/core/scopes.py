"""Scopes: which member must hold which record, as this node currently sees the cluster.

Rules:
1. One snapshot (`ScopeView`) per membership-or-policy change; every decision between two
   changes uses the same snapshot, so a push and the reconciliation beside it agree.
2. `holds(member, dataset, key)` is the single predicate behind every send and every
   receive: the sender checks it for the recipient before each send (Invariant 2), the
   receiver checks it for itself before it stores anything.
3. Admission (docs/architecture.md, invariant 8): a member not admitted holds nothing of another
   member's, so nothing at all is sent to it, and nothing it sends is taken but
   administrative records, which their signature speaks for. So that a member learns the
   grants it lacks (its own admission first), administrative records are received from any
   member: by push, and by reconciliation in which this side offers nothing ("receive").
4. Two members reconcile a dataset over exactly the records both must hold
   (`shared_scope`), so a digest never covers data the peer may not hold, and "withheld by
   policy" never looks like "behind".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .authority import ADMIN_DATASETS, WEP_GRANT
from .catalog import REPLICATED_DATASETS, Scope
from .catalog import dataset as lookup_dataset
from .events import Address, MemberChanged
from .member_map import MemberMapBuilder
from .membership import ALIVE, SUSPECT, Membership, tags_wep
from .placement import (
    Candidate,
    ClusterPolicy,
    mailbox_id,
    mailbox_owners,
    private_keys_eligible,
    wep_candidates,
)
from .store import RecordStore

if TYPE_CHECKING:
    from .context import NodeContext

__all__ = ["HOLDING_STATES", "MemberView", "MemberViews", "ScopeView", "withheld_by_peer"]

# Members that count for placement: a suspect member may be alive; moving its mailboxes
# on every suspicion would churn. Dead and left members hold nothing.
HOLDING_STATES = frozenset({ALIVE, SUSPECT})
# The membership keeps its own deadlines; the node's heap holds the earliest under this key.
TIMER_MEMBERSHIP = "membership"

WEB_MESSENGER = "web_messenger"
PRIVATE_KEYS = "private_keys"
_UNKNOWN = object()


@dataclass(frozen=True, slots=True)
class MemberView:
    node_id: bytes
    name: str
    state: str
    tags: Mapping[str, str]


@dataclass
class _LiveHolders:
    """The live peers, and per dataset whose holders do not depend on the key its live
    holders: shared by the views of one holders basis (`ScopeView.holders_basis`)."""

    peers: list[bytes] | None = None
    by_dataset: dict[str, tuple[bytes, ...]] = field(default_factory=dict)


@dataclass
class ScopeView:
    """Who holds what, for one membership list and one policy."""

    self_id: bytes
    members: Mapping[bytes, MemberView]
    policy: ClusterPolicy
    # Bumped by MemberViews whenever a change of members may move mailboxes.
    placement_version: int = 0
    # Shared by the views of one placement basis (the owners are a function of it).
    _owners: dict[str, tuple[bytes, ...] | None] = field(default_factory=dict)
    _candidates: list[Candidate] | None = None
    # Bumped by MemberViews whenever a change of members may change who is live, or a
    # member's tags (private-key eligibility): the live peers and the holders of each
    # dataset are shared by the views in between (`_live`).
    holders_version: int = 0
    _live: _LiveHolders = field(default_factory=_LiveHolders)

    def placement_basis(self) -> tuple[object, ...]:
        """Everything mailbox ownership depends on: equal bases give equal owners. O(1):
        the policy (compared by value) and the member views' placement version."""
        return (self.policy, self.placement_version)

    def holders_basis(self) -> tuple[object, ...]:
        """Everything `peers` and the key-independent `push_targets` depend on: equal bases
        give equal answers. O(1): the policy (compared by value) and the holders version."""
        return (self.policy, self.holders_version)

    def live(self, node_id: bytes) -> bool:
        member = self.members.get(node_id)
        return member is not None and member.state in HOLDING_STATES

    def peers(self) -> list[bytes]:
        """Live members other than this node, in a stable order (computed once per view)."""
        live = self._live
        if live.peers is None:
            self_id = self.self_id
            live.peers = sorted(n for n, member in self.members.items()
                                if member.state in HOLDING_STATES and n != self_id)
        return list(live.peers)

    def admitted(self, node_id: bytes) -> bool:
        """May this member take part in data replication (rule 3)?"""
        return self.policy.admitted(node_id)

    def private_keys_eligible(self, node_id: bytes) -> bool:
        member = self.members.get(node_id)
        return member is not None and private_keys_eligible(node_id, member.tags, self.policy)

    def runs_wep(self, node_id: bytes) -> bool:
        member = self.members.get(node_id)
        return member is not None and tags_wep(member.tags)

    def owners(self, mailbox: str) -> tuple[bytes, ...] | None:
        """The mailbox's owners, or None when WEP replication is off."""
        owners = self._owners.get(mailbox, _UNKNOWN)
        if owners is _UNKNOWN:
            owners = self._owners[mailbox] = mailbox_owners(
                mailbox, self._wep_candidates(), self.policy
            )
        return owners

    def _wep_candidates(self) -> list[Candidate]:
        if self._candidates is None:
            live = [
                Candidate(m.node_id, m.name, m.tags)
                for m in self.members.values()
                if m.state in HOLDING_STATES
            ]
            self._candidates = wep_candidates(live, self.policy)
        return self._candidates

    def holds(self, node_id: bytes, dataset: str, key: str) -> bool:
        """Must `node_id` hold this record? (For this node itself: may it keep it?)"""
        scope = lookup_dataset(dataset).scope
        if node_id != self.self_id and not self.admitted(node_id):
            return False
        if scope is Scope.ALL:
            return True
        if scope is Scope.PRIVATE_KEY_ELIGIBLE:
            return self.private_keys_eligible(node_id)
        if scope is Scope.WEP_PLACEMENT:
            owners = self.owners(mailbox_id(key))
            return owners is not None and node_id in owners
        return False  # local data is held by its own node, and never sent

    def holds_whole(self, node_id: bytes, dataset: str) -> bool:
        """Must `node_id` hold every record of `dataset`, so that two such members' digest
        roots are equal once they are in step (core/cluster_view.py)? Administrative
        datasets: every member; `all` scope: admitted members; private keys: eligible
        members. Never WEP mailboxes: each owner holds its own subset, so owners' roots
        differ by design (reconciliation compares them pair by pair)."""
        if dataset in ADMIN_DATASETS:
            return True
        if not self.admitted(node_id):
            return False
        scope = lookup_dataset(dataset).scope
        if scope is Scope.ALL:
            return True
        if scope is Scope.PRIVATE_KEY_ELIGIBLE:
            return self.private_keys_eligible(node_id)
        return False

    def shared_scope(self, peer: bytes, dataset: str) -> str | None:
        """How this node and `peer` reconcile `dataset`: "all" (the whole dataset),
        "pair" (only the mailboxes both own), "receive" (take the peer's records, offer
        none: rule 3) or None (not at all)."""
        scope = lookup_dataset(dataset).scope
        if dataset in ADMIN_DATASETS:
            return "all" if self.admitted(peer) else "receive"
        if not (self.admitted(peer) and self.admitted(self.self_id)):
            return None
        if scope is Scope.ALL:
            return "all"
        if scope is Scope.PRIVATE_KEY_ELIGIBLE:
            both = self.private_keys_eligible(self.self_id) and self.private_keys_eligible(peer)
            return "all" if both else None
        if scope is Scope.WEP_PLACEMENT:
            if not self.policy.wep_replication:
                return None
            both = self.runs_wep(self.self_id) and self.runs_wep(peer)
            if self.policy.enforced:
                both = both and self.policy.granted(peer, WEP_GRANT) and self.policy.granted(
                    self.self_id, WEP_GRANT)
            return "pair" if both else None
        return None

    def push_targets(self, dataset: str, key: str) -> Sequence[bytes]:
        """Every live peer that must hold this record (the caller picks a fan-out). Outside
        WEP placement the holders do not depend on the key: worked out once per holders
        basis and dataset, not at every push (O(n) calls of `holds` per write), nor at every
        view (a new one at every membership change)."""
        scope = lookup_dataset(dataset).scope
        if scope is Scope.WEP_PLACEMENT:
            owners = self.owners(mailbox_id(key)) or ()
            return [n for n in owners if n != self.self_id and self.live(n)]
        by_dataset = self._live.by_dataset
        holders = by_dataset.get(dataset)
        if holders is None:
            holders = by_dataset[dataset] = tuple(
                n for n in self.peers() if self.holds(n, dataset, key))
        return holders


class MemberViews:
    """The members as the scope view needs them, kept in step with MemberChanged events
    (rebuilding them from the membership on every change would cost O(n) each time), and
    the cluster policy: together they make each new `ScopeView`. Each view's members are
    a snapshot (member_map.py) that costs O(1) to take, not a copy of every member."""

    def __init__(self, membership: Membership, policy: ClusterPolicy) -> None:
        self._membership = membership
        self.policy = policy
        self._views: MemberMapBuilder[MemberView] = MemberMapBuilder({
            m.node_id: MemberView(m.node_id, m.name, m.state, dict(m.tags))
            for m in membership.members()
        })
        # Address -> the member last announced there, so that a lost connection finds its
        # member in O(1) (a scan of every member per connection_lost costs O(n) each time).
        self._at: dict[tuple[str, int], bytes] = {
            (m.address[0], m.address[1]): m.node_id for m in membership.members()
        }
        self._deadline: float | None = None
        # Bumped by every change that may move mailboxes (`_moves_mailboxes`), so that a
        # placement basis costs O(1), not a sort of every member at every change; and the
        # owners already computed for the current basis, which the next view shares.
        self._placement_version = 0
        self._placement: tuple[tuple[object, ...], ScopeView] | None = None
        # The same for who is live and what tags each member has (`ScopeView._live`).
        self._holders_version = 0
        self._holders: tuple[tuple[object, ...], _LiveHolders] | None = None
        # (alive statement, state, member view) of this node at the last `view`: while
        # the membership's statement and state and the view held are the same objects,
        # this node's member view is as it was (`view` builds none).
        self._local: tuple[object, str, MemberView | None] | None = None
        # Members that came (back) alive in the changes taken since the caller last
        # emptied this: new to us, or alive again after dead, left or suspect (a refuted
        # suspicion: the member may have been cut off, as in a partition too short for
        # anyone to be declared dead, and missed what was written meanwhile).
        self.revived: list[bytes] = []

    def node_at(self, address: Address) -> bytes | None:
        """The member at `address` (the one last announced there), if any."""
        return self._at.get((address[0], address[1]))

    def view(self) -> ScopeView:
        """A new snapshot, with this node as the membership sees it now."""
        alive, state = self._membership.local_statement()
        node_id = alive.node_id
        held = self._views.get(node_id)
        local = self._local
        if local is None or local[0] is not alive or local[1] != state or local[2] is not held:
            after = MemberView(node_id, alive.name, state, dict(alive.tags))
            if _moves_mailboxes(held, after):
                self._placement_version += 1
            if after != held:
                self._views.set(node_id, after)
                held = after
            self._local = (alive, state, held)
        view = ScopeView(node_id, self._views.snapshot(), self.policy,
                         self._placement_version, holders_version=self._holders_version)
        basis = view.placement_basis()
        if self._placement is not None and self._placement[0] == basis:
            view._owners = self._placement[1]._owners
            view._candidates = self._placement[1]._candidates
        else:
            self._placement = (basis, view)
        basis = view.holders_basis()
        if self._holders is not None and self._holders[0] == basis:
            view._live = self._holders[1]
        else:
            self._holders = (basis, view._live)
        return view

    def drain(self, ctx: NodeContext) -> tuple[bool, list[bytes]] | None:
        """Pass the membership's events on to the driver and re-arm its deadline in the
        node's timers; for member changes, return what `changed` says (else None)."""
        changes = []
        for event in self._membership.events():
            ctx.emit(event)
            if isinstance(event, MemberChanged):
                changes.append(event)
        deadline = self._membership.next_deadline()
        if deadline != self._deadline or TIMER_MEMBERSHIP not in ctx.timers:
            # (Only when it moved: every set leaves a stale entry in the heap until then.)
            self._deadline = deadline
            if deadline is None:
                ctx.timers.cancel(TIMER_MEMBERSHIP)
            else:
                ctx.timers.set(TIMER_MEMBERSHIP, deadline)
        return self.changed(changes) if changes else None

    def changed(self, changes: Iterable[MemberChanged]) -> tuple[bool, list[bytes]]:
        """Take member changes: (may mailboxes have moved, members no longer holding)."""
        placement = False
        gone = []
        for event in changes:
            before = self._views.get(event.node_id)
            after = MemberView(event.node_id, event.name, event.state, dict(event.tags))
            self._views.set(event.node_id, after)
            self._at[(event.address[0], event.address[1])] = event.node_id
            if _moves_mailboxes(before, after):
                placement = True
                self._placement_version += 1
            if _moves_holders(before, after):
                self._holders_version += 1
            if event.state == ALIVE and (before is None or before.state != ALIVE):
                self.revived.append(event.node_id)
            if event.state not in HOLDING_STATES:
                gone.append(event.node_id)
        return placement, gone


def _moves_mailboxes(before: MemberView | None, after: MemberView) -> bool:
    """Can this change of one member move mailboxes? Only a WEP member's can."""
    def key(view: MemberView | None) -> tuple[bool, bool, str] | None:
        if view is None:
            return None
        return (view.state in HOLDING_STATES, tags_wep(view.tags), view.name)

    runs_wep = any(v is not None and tags_wep(v.tags) for v in (before, after))
    return runs_wep and key(before) != key(after)


def _moves_holders(before: MemberView | None, after: MemberView) -> bool:
    """Can this change of one member change who is live, or who holds a dataset whatever
    the key? Only a new member's, a change of liveness, or of tags can."""
    return (before is None or (before.state in HOLDING_STATES) != (after.state in HOLDING_STATES)
            or before.tags != after.tags)


def withheld_by_peer(view: ScopeView, store: RecordStore,
                     refused: Mapping[tuple[bytes, str], int]) -> dict[bytes, dict[str, int]]:
    """Per live peer, the records this node holds and withholds from it, by reason, plus
    what the peer itself refused (`refused`, by (peer, dataset))."""
    private_keys = store.count(PRIVATE_KEYS)
    mailboxes: Counter[str] = Counter(
        mailbox_id(r.key) for r in store.replicated(WEB_MESSENGER) if r.value is not None
    )
    withheld: dict[bytes, dict[str, int]] = {}
    everything: int | None = None
    for peer in view.peers():
        counts: dict[str, int] = {}
        if not view.admitted(peer):  # rule 3: nothing at all for a member not admitted
            if everything is None:
                everything = sum(store.count(name) for name in REPLICATED_DATASETS)
            if everything:
                counts["not admitted"] = everything
            withheld[peer] = counts
            continue
        if private_keys and not view.private_keys_eligible(peer):
            counts["private_keys: not eligible"] = private_keys
        if view.policy.wep_replication:
            held_elsewhere = sum(
                n for mailbox, n in mailboxes.items() if peer not in (view.owners(mailbox) or ())
            )
        else:
            held_elsewhere = sum(mailboxes.values())
        if held_elsewhere:
            counts["web_messenger: not an owner"] = held_elsewhere
        refused_by_peer = sum(n for (p, _), n in refused.items() if p == peer)
        if refused_by_peer:
            counts["refused by peer"] = refused_by_peer
        withheld[peer] = counts
    return withheld
