"""Suspect and dead claims (state.py rules 2 to 5): what others say about a member.

A claim changes a member only at or above the incarnation we hold, and never above the
incarnation of the subject's latest signed alive statement (a lie, counted as
`claims_over_signed`); one about ourselves makes us refute. A suspicion starts a Lifeguard
timer (suspicion.py) that confirmations shorten: each a member we hold live telling us of
its own suspicion, at most one per member (state.py rule 2); when it runs out, the member is
dead. Another member's dead claim is taken as a suspicion (state.py rule 10): `apply_dead` is
our own timer's verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...config import MembershipConfig
from .members import ALIVE, DEAD, LEFT, SUSPECT, Entry
from .messages import Dead, Suspect
from .outbox import Outbox
from .suspicion import Suspicion, suspicion_bounds_s

if TYPE_CHECKING:
    from .state import MemberTable

__all__ = ["Claims"]


class Claims:
    def __init__(
        self, config: MembershipConfig, node_id: bytes, table: MemberTable, outbox: Outbox
    ) -> None:
        self._config = config
        self._node_id = node_id
        self._table = table
        self._outbox = outbox

    def _allowed(self, node_id: bytes, incarnation: int, now: float) -> Entry | None:
        """The entry a suspect or dead claim may change, or None (rules 4 and 5)."""
        if node_id == self._node_id:
            if incarnation > self._table.local.incarnation:
                self._outbox.statistics["claims_over_signed"] += 1
            elif not self._table.leaving and incarnation == self._table.local.incarnation:
                self._table.own.refute(incarnation, now)
            return None
        entry = self._table.members.get(node_id)
        if entry is None or incarnation < entry.incarnation:
            return None
        if incarnation > entry.alive.incarnation:
            self._outbox.statistics["claims_over_signed"] += 1
            return None
        return entry

    def apply_dead(self, dead: Dead, now: float) -> None:
        entry = self._allowed(dead.node_id, dead.incarnation, now)
        if entry is None or entry.state in (DEAD, LEFT):
            return
        entry.incarnation = dead.incarnation
        self._outbox.statistics["deaths"] += 1
        self._table.gone(entry, DEAD, now)
        self._outbox.broadcasts.push(dead)

    def apply_suspect(self, suspect: Suspect, sender: bytes, now: float) -> None:
        """Take `suspect`, which `sender` (the channel's proven id; our own for our own failed
        probe) told us."""
        self.apply_claim(suspect.node_id, suspect.incarnation, suspect.reporter, sender, now,
                         suspect)

    def apply_claim(self, node_id: bytes, incarnation: int, reporter: bytes, sender: bytes,
                    now: float, suspect: Suspect | None = None) -> None:
        """Take the suspicion `Suspect(node_id, incarnation, reporter)` (`suspect`, if the
        caller holds it already) as `apply_suspect` does. A dead claim (state.py rule 10)
        comes here as its sender's suspicion, built only if it changes something: most
        claims a member hears about the dead after a partition change nothing."""
        entry = self._allowed(node_id, incarnation, now)
        if entry is None:
            return
        if entry.state == SUSPECT and entry.suspicion is not None:
            if (
                incarnation == entry.incarnation
                and self._first_hand(reporter, sender)
                and entry.suspicion.confirm(sender)
            ):
                # Lifeguard: a new confirmation shortens the timeout (state.py rule 2).
                self._outbox.timers.set(("suspicion", entry.node_id), entry.suspicion.deadline)
                if sender == self._node_id:
                    # Ours: first-hand to whoever we tell, so it shortens their timers too.
                    # Another's would be second-hand there and count nowhere, and would
                    # take the place of ours in the queue (one statement per subject).
                    self._outbox.broadcasts.push(suspect if suspect is not None
                                                 else Suspect(node_id, incarnation, reporter))
            return
        if entry.state != ALIVE:
            return
        if suspect is None:
            suspect = Suspect(node_id, incarnation, reporter)
        members = len(self._table.reachable) + 1
        minimum_s, maximum_s = suspicion_bounds_s(
            self._config.suspicion_mult,
            self._config.suspicion_max_timeout_mult,
            self._config.probe_interval_s,
            members,
        )
        # memberlist: expect suspicion_mult - 2 confirmations, none in clusters too small.
        expected = self._config.suspicion_mult - 2
        if members - 2 < expected:
            expected = 0
        entry.incarnation = suspect.incarnation
        entry.set_state(SUSPECT, now)
        entry.suspicion = Suspicion(
            suspect.incarnation, suspect.reporter, now, minimum_s, maximum_s, max(expected, 0)
        )
        self._outbox.statistics["suspicions"] += 1
        self._outbox.timers.set(("suspicion", entry.node_id), entry.suspicion.deadline)
        self._outbox.broadcasts.push(suspect)
        self._outbox.changed(entry)

    def _first_hand(self, reporter: bytes, sender: bytes) -> bool:
        """Whether a suspicion `reporter` names may confirm (state.py rule 2): the sender
        tells of its own suspicion, and is ourselves or a member we hold alive or suspect
        (not a stranger, a pending member or one we hold dead)."""
        if reporter != sender:
            return False
        if sender == self._node_id:
            return True
        entry = self._table.members.get(sender)
        return entry is not None and entry.state in (ALIVE, SUSPECT)

    def suspicion_timeout(self, node_id: bytes, now: float) -> None:
        entry = self._table.members.get(node_id)
        if entry is not None and entry.state == SUSPECT:
            self.apply_dead(Dead(node_id, entry.incarnation, self._node_id), now)
