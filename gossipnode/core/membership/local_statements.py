"""This member's own statements (state.py rule 5): its alive statement signed anew (new
tags, a refutation), and what the statements about it that others send make it do. They
are never applied to its own entry: at most they make it refute.

Rules:
1. An alive or left statement about us, signed by us (verified.py), at or above our
   incarnation and not the alive statement we hold, is from a former life (a restart forgot
   it): it makes us refute. So does a suspect or dead claim at our incarnation (claims.py),
   and a force-leave bound at or above it (forced.py, state.py rule 9). Once we announced
   our leave we refute nothing.
2. A suspect or dead claim about us above our incarnation is a lie (we never signed an
   alive statement there): it is counted as `claims_over_signed` and changes nothing
   (claims.py); one below it is old news, and ignored.
3. A refutation is a new signed alive statement at one above both our incarnation and the
   accused one. No statement can push our incarnation past its 64-bit maximum: a
   refutation that would is not made (only a statement we signed at the maximum ourselves
   could ask for it).
4. Lifeguard: having to refute hints that we are slow to answer, so each refutation raises
   the awareness score by one.
5. Every new alive statement of ours is queued for broadcast and reported (MemberChanged),
   as every accepted change is (state.py rule 8).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..events import Address
from .awareness import Awareness
from .messages import INCARNATION_MAX, Alive, Left, Tags
from .outbox import Outbox

if TYPE_CHECKING:
    from .state import MemberTable

__all__ = ["LocalStatements"]


class LocalStatements:
    """The rules above, over the member table's own entry (`table.local`)."""

    def __init__(self, table: MemberTable, outbox: Outbox, awareness: Awareness) -> None:
        self._table = table
        self._outbox = outbox
        self._awareness = awareness

    def alive_heard(self, alive: Alive, sender: bytes, now: float) -> None:
        """An alive statement about ourselves, which `sender` passed on (rules 1 and 2)."""
        table = self._table
        if (
            not table.leaving
            and alive != table.local.alive
            and alive.incarnation >= table.local.incarnation
            and table.signatures.alive_ok(alive, sender)
        ):
            self.refute(alive.incarnation, now)  # a statement from our former life

    def left_heard(self, left: Left, sender: bytes, now: float) -> None:
        """A left statement about ourselves, which `sender` passed on (rules 1 and 2)."""
        table = self._table
        if (
            not table.leaving
            and left.incarnation >= table.local.incarnation
            and table.signatures.left_ok(left, sender)
        ):
            self.refute(left.incarnation, now)

    def refute(self, accused_incarnation: int, now: float) -> None:
        local = self._table.local
        incarnation = max(local.incarnation, accused_incarnation) + 1
        if incarnation > INCARNATION_MAX:
            return  # only reachable by a statement we signed at the maximum ourselves
        self._outbox.statistics["refutations"] += 1
        # Lifeguard: having to refute hints that we are slow to answer.
        self._awareness.apply(1)
        alive = local.alive
        self.set_local_alive(alive.name, (alive.host, alive.port), incarnation, alive.tags, now)

    def set_local_alive(
        self, name: str, address: Address, incarnation: int, tags: Tags, now: float
    ) -> None:
        local = self._table.local
        alive = self._table.signatures.signed_alive(name, address, incarnation, tags)
        local.alive = alive
        local.incarnation = incarnation
        self._outbox.broadcasts.push(alive)
        self._outbox.changed(local)
