"""What depends on a scope view only through the policy and this node's own member view.

Rule: a new view is taken at every membership change, but what this node itself holds (the
datasets it holds whole: cluster_view.py, replays.py; those it may hold at all:
gained_rounds.py) depends only on the policy (the same object until it is reloaded) and this
node's own member view (its state and tags), which rarely change. `OwnViewBasis.changed` says
whether either changed since it last said so, so such work is redone only then.
"""

from __future__ import annotations

from .scopes import MemberView, ScopeView

__all__ = ["OwnViewBasis"]


class OwnViewBasis:
    __slots__ = ("_basis",)

    def __init__(self) -> None:
        self._basis: tuple[object, MemberView | None] | None = None

    def changed(self, view: ScopeView) -> bool:
        """Have the policy or this node's own member view changed since the last call that
        returned True (or since `forget`)? Takes `view` as the new basis if so."""
        own = view.members.get(view.self_id)
        basis = self._basis
        if basis is not None and basis[0] is view.policy and (basis[1] is own or basis[1] == own):
            return False
        self._basis = (view.policy, own)
        return True

    def forget(self) -> None:
        """The next `changed` answers True, whatever the view."""
        self._basis = None
