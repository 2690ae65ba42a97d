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
5. The subject of an administrative record (the member a grant or force-leave names:
   core/authority.py `subject_of`) holds that record, admitted or not, and is always among
   its push targets, besides the fan-out (core/replication.py rule 1): a member learns at once
   that its admission or a grant was taken away, though its peers send it nothing else and,
   in its own sessions, only receive (rule 3). A signed record about a member reveals nothing
   that member may not know. Nothing else reaches a member not admitted: not the grants of
   others, not the WEP policy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .authority import ADMIN_DATASETS, WEP_GRANT, subject_of
from .catalog import REPLICATED_DATASETS, Scope
from .catalog import dataset as lookup_dataset
from .live_holders import LiveHolders
from .membership import ALIVE, SUSPECT, tags_wep
from .membership.members import PENDING
from .placement import (
    Candidate,
    ClusterPolicy,
    mailbox_id,
    mailbox_owners,
    private_keys_eligible,
    wep_candidates,
)
from .store import RecordStore

__all__ = ["HOLDING_STATES", "MemberView", "ScopeView", "withheld_by_peer"]

# Members that count for placement: a suspect member may be alive; moving its mailboxes
# on every suspicion would churn. Dead and left members hold nothing.
HOLDING_STATES = frozenset({ALIVE, SUSPECT})

# The members an administrative record about them is pushed to (rule 5).
_SUBJECT_STATES = HOLDING_STATES | {PENDING}

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
    _live: LiveHolders = field(default_factory=LiveHolders)

    def placement_basis(self) -> tuple[object, ...]:
        """Everything mailbox ownership depends on: equal bases give equal owners. O(1):
        the policy (compared by value) and the member views' placement version."""
        return (self.policy, self.placement_version)

    def share_placement(self, other: ScopeView) -> None:
        """Take the owners and candidates `other` computed: a view of the same placement
        basis, so they are this view's too."""
        self._owners = other._owners
        self._candidates = other._candidates

    def holders_basis(self) -> tuple[object, ...]:
        """Everything `peers` and the key-independent `push_targets` depend on: equal bases
        give equal answers. O(1): the policy (compared by value) and the holders version."""
        return (self.policy, self.holders_version)

    def share_holders(self, other: ScopeView) -> None:
        """Take the live peers and holders `other` worked out: a view of the same holders
        basis, so they are this view's too."""
        self._live = other._live

    def follow_holders(self, previous: ScopeView, changed: set[bytes]) -> None:
        """This view's holders basis follows `previous`'s (same policy), with only the
        members in `changed` changed in liveness or tags since: its lists are worked out
        from those of earlier bases (core/live_holders.py)."""
        self._live.follow(previous._live, changed)

    def live(self, node_id: bytes) -> bool:
        member = self.members.get(node_id)
        return member is not None and member.state in HOLDING_STATES

    def peers(self) -> list[bytes]:
        """Live members other than this node, in a stable order (computed once per view)."""
        live = self._live
        if live.peers is None:
            self_id = self.self_id
            live.peers = live.derived_peers(self._live_peer)
            if live.peers is None:
                live.peers = sorted(n for n, member in self.members.items()
                                    if member.state in HOLDING_STATES and n != self_id)
        return list(live.peers)

    def _live_peer(self, node_id: bytes) -> bool:
        return node_id != self.self_id and self.live(node_id)

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
            return subject_of(dataset, key) == node_id  # rule 5: the record about it
        if scope is Scope.ALL:
            return True
        if scope is Scope.PRIVATE_KEY_ELIGIBLE:
            return self.private_keys_eligible(node_id)
        if scope is Scope.WEP_PLACEMENT:
            owners = self.owners(mailbox_id(key))
            return owners is not None and node_id in owners
        return False  # local data is held by its own node, and never sent

    def subject_peer(self, dataset: str, key: str) -> bytes | None:
        """The peer an administrative record is about, which it is always pushed to (rule 5),
        or None: a live member, or one set aside as pending (its admission just taken away:
        core/membership/admitting.py rule 1, or not given yet)."""
        subject = subject_of(dataset, key)
        if subject is None or subject == self.self_id:
            return None
        member = self.members.get(subject)
        if member is None or member.state not in _SUBJECT_STATES:
            return None
        return subject

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
        WEP placement the holders do not depend on the key but for the subject of an
        administrative record (rule 5, added here): worked out once per holders basis and
        dataset, not at every push (O(n) calls of `holds` per write), nor at every view (a
        new one at every membership change)."""
        scope = lookup_dataset(dataset).scope
        if scope is Scope.WEP_PLACEMENT:
            owners = self.owners(mailbox_id(key)) or ()
            return [n for n in owners if n != self.self_id and self.live(n)]
        live = self._live
        by_dataset = live.by_dataset
        holders = by_dataset.get(dataset)
        if holders is None:
            derived = live.derived(dataset, lambda n: (
                self._live_peer(n) and self.holds(n, dataset, "")))
            if derived is not None:
                holders = tuple(derived)
            else:
                holders = tuple(n for n in self.peers() if self.holds(n, dataset, ""))
            by_dataset[dataset] = holders
        subject = self.subject_peer(dataset, key)
        if subject is not None and subject not in holders:
            return (*holders, subject)
        return holders


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
