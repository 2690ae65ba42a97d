"""The scope views' side of the membership: the members kept in step with its events, the
cluster policy, and from them a new `ScopeView` (core/scopes.py) at every change (scopes.py
rule 1); and the membership's events and deadline passed on to the node."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .events import Address, MemberChanged
from .member_map import MemberMapBuilder
from .membership import ALIVE, Membership, tags_wep
from .placement import ClusterPolicy
from .scopes import HOLDING_STATES, MemberView, ScopeView

if TYPE_CHECKING:
    from .context import NodeContext

__all__ = ["MemberViews"]

# The membership keeps its own deadlines; the node's heap holds the earliest under this key.
TIMER_MEMBERSHIP = "membership"


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
        # The same for who is live and what tags each member has (`ScopeView.share_holders`).
        self._holders_version = 0
        self._holders: tuple[tuple[object, ...], ScopeView] | None = None
        # The members whose liveness or tags changed since the holders basis above: the
        # next basis derives its lists from that one's (`ScopeView.follow_holders`).
        self._holders_changed: set[bytes] = set()
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
            view.share_placement(self._placement[1])
        else:
            self._placement = (basis, view)
        basis = view.holders_basis()
        if self._holders is not None and self._holders[0] == basis:
            view.share_holders(self._holders[1])
        else:
            if self._holders is not None and self._holders[0][0] == basis[0]:
                view.follow_holders(self._holders[1], self._holders_changed)
            self._holders = (basis, view)
            self._holders_changed = set()
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
                self._holders_changed.add(event.node_id)
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
