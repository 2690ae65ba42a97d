"""Force-leave bounds: members an administrator forced out (state.py rule 9).

A bound says: the member at this incarnation or below is gone. The node takes the bounds
from administrator-signed records it verified (core/placement.py, `force_left/<id>`); the
member table removes the subjects and asks `refuses` about every alive statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ...config import MembershipConfig
from .messages import Alive, Dead, Gossip, Updates
from .outbox import Outbox

__all__ = ["ForceLeft"]


class ForceLeft:
    def __init__(self, config: MembershipConfig, node_id: bytes, outbox: Outbox,
                 verified_alive: Callable[[Alive, bytes], bool]) -> None:
        self._config = config
        self._node_id = node_id
        self._outbox = outbox
        self._verified_alive = verified_alive
        # node id -> the incarnation at or below which it was forced out.
        self.bounds: dict[bytes, int] = {}
        # When we last told a subject that spoke to us from below its bound.
        self._told: dict[bytes, float] = {}

    def set(self, bounds: Mapping[bytes, int]) -> None:
        self.bounds = dict(bounds)
        self._told = {n: at for n, at in self._told.items() if n in self.bounds}

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
        if self._verified_alive(alive, sender):  # its address is the one it signed
            self._told[sender] = now
            notice = Dead(sender, alive.incarnation, self._node_id)
            self._outbox.send((alive.host, alive.port), Gossip(Updates(dead=(notice,))), sender)
        return True
