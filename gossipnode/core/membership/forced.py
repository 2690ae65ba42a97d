"""Force-leave bounds: members an administrator forced out (state.py rule 9).

A bound says: the member at this incarnation or below is gone. The node takes the bounds
from administrator-signed records it verified (core/placement.py, `force_left/<id>`);
`set` removes the subjects from the member table, and the table asks `refuses` about every
alive statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...config import MembershipConfig
from .members import LEFT
from .messages import Alive, Dead, Gossip, Updates
from .outbox import Outbox

if TYPE_CHECKING:
    from .state import MemberTable

__all__ = ["ForceLeft"]


class ForceLeft:
    def __init__(self, config: MembershipConfig, node_id: bytes, table: MemberTable,
                 outbox: Outbox) -> None:
        self._config = config
        self._node_id = node_id
        self._table = table
        self._outbox = outbox
        # node id -> the incarnation at or below which it was forced out.
        self.bounds: dict[bytes, int] = {}
        # When we last told a subject that spoke to us from below its bound.
        self._told: dict[bytes, float] = {}

    def set(self, bounds: Mapping[bytes, int], now: float) -> list[bytes]:
        """Take the force-leave bounds (state.py rule 9); return the members removed now."""
        self.bounds = dict(bounds)
        self._told = {n: at for n, at in self._told.items() if n in self.bounds}
        table = self._table
        removed = []
        for node_id, bound in sorted(bounds.items()):
            if node_id == self._node_id:
                if not table.leaving and table.local.incarnation <= bound:
                    self._outbox.statistics["forced_out_refuted"] += 1
                    table.own.refute(bound, now)  # we are running: back above the bound
                continue
            waiting = table.pending.get(node_id)
            if waiting is not None and waiting.alive.incarnation <= bound:
                table.pending.pop(node_id)
            entry = table.members.get(node_id)
            if entry is None or entry.incarnation > bound:
                continue
            if entry.state != LEFT:
                table.gone(entry, LEFT, now)
            self._outbox.timers.cancel(("reap", node_id))
            table.reap(node_id, now)
            removed.append(node_id)
        return removed

    def refuses(self, alive: Alive, sender: bytes, now: float) -> bool:
        """Must `alive` be refused (its subject forced out at or above its incarnation)? A
        subject that says so itself is running after all: it is told (a death notice at its
        incarnation, at most once per probe interval), so that it refutes above the bound."""
        if alive.incarnation > self.bounds.get(alive.node_id, -1):
            return False
        self._outbox.statistics["force_left_refused"] += 1
        if sender != alive.node_id:
            return True
        told = self._told.get(sender)
        if told is not None and told + self._config.probe_interval_s > now:
            return True
        if self._table.signatures.alive_ok(alive, sender):  # its address is the one it signed
            self._told[sender] = now
            notice = Dead(sender, alive.incarnation, self._node_id)
            self._outbox.send((alive.host, alive.port), Gossip(Updates(dead=(notice,))), sender)
        return True
