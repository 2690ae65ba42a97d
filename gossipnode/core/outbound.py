"""Outbound: the one way any part of the core sends a message to a peer.

Rule (Containment, Invariant 2, sending side): before a message leaves, the recipient's
right to hold every record it carries is checked with the current `ScopeView`. A message
with a record the peer may not hold is withheld whole, never sent, and counted. That
happens only when the view changed under a push or a session; the session is then ended
with an abort rather than left to time out.
A member set aside as pending (its admission taken away) has no address among the members:
a message that carries only administrative records about it (core/scopes.py rule 5) goes to
the address its pending alive statement signed; nothing else goes to a pending member.
"""

from __future__ import annotations

from .anti_entropy import AntiEntropy
from .context import NodeContext
from .events import Address, Send

__all__ = ["Outbound"]


class Outbound:
    def __init__(self, ctx: NodeContext, anti_entropy: AntiEntropy) -> None:
        self._ctx = ctx
        self._anti_entropy = anti_entropy

    def send(self, peer: bytes, message: object) -> None:
        """Send to a member by node id (nothing, if it is not a member), checked."""
        ctx = self._ctx
        for record in getattr(message, "records", ()):
            if not ctx.view.holds(peer, record.dataset, record.key):
                ctx.counters["sends_withheld"] += 1
                ctx.withheld[(peer, record.dataset)] += 1
                abort = self._anti_entropy.refusal(message, "scope changed")
                if abort is not None:
                    self._anti_entropy.abandon(peer, abort.session, "scope changed")
                    self.send(peer, abort)
                return
        address = ctx.membership.address_of(peer)
        if address is None:
            address = self._subject_address(peer, message)
        if address is None:
            return
        ctx.counters[f"sent_{type(message).__name__}"] += 1
        ctx.emit(Send(address, message, peer))

    def _subject_address(self, peer: bytes, message: object) -> Address | None:
        """The pending `peer`'s signed address, when `message` carries records and every one
        is an administrative record about `peer` (scopes.py rule 5); else None. O(pending
        members), and only for such messages: administrative records are few."""
        records = getattr(message, "records", ())
        view = self._ctx.view
        if not records or any(view.subject_peer(r.dataset, r.key) != peer for r in records):
            return None
        for node_id, _, address in self._ctx.membership.pending_members():
            if node_id == peer:
                return address
        return None
