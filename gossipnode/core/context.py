"""What the parts of one node share: its identity, store, membership, clocks, timers,
current scope view, counters and the queue of events for the driver.

Rules:
1. One `NodeContext` per `NodeCore`; every part holds the same one. A part reads `view`
   at the moment it decides (never a copy kept from before), so all parts decide with the
   same snapshot between two membership-or-policy changes.
2. Every deadline of the node lives in `timers` (one heap): parts set and cancel their own
   keys, and `NodeCore.handle_timer` hands each part the keys that fell due.
3. Parts report to the driver only through `emit`, and reach peers only through `send`
   (which the router binds to its checked send, `Outbound.send`).
4. Two clocks, never mixed. `now`, passed with every input, is monotonic seconds: it
   drives `timers` and every deadline, and a wall clock step cannot move it. `wall_ms()`,
   injected by the driver, is the wall clock in Unix milliseconds: it is read only for
   what must agree across nodes, the hybrid clock's stamps, the tombstone horizon and the
   time of the last completed sync (`synced_ms`, compared with that horizon).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import NodeConfig
from .events import Disconnect, Event, PeerRefused
from .membership import Membership
from .membership.timers import Timers
from .scopes import ScopeView
from .store import RecordStore

__all__ = ["NodeContext", "WallClock"]

# The injected wall clock: Unix time in milliseconds (rule 4).
WallClock = Callable[[], int]


@dataclass(eq=False)
class NodeContext:
    config: NodeConfig
    store: RecordStore
    node_id: bytes
    rng: random.Random
    membership: Membership
    view: ScopeView
    wall_ms: WallClock
    timers: Timers = field(default_factory=Timers)
    counters: Counter[str] = field(default_factory=Counter)
    # Records refused from each sender (for status), and what each peer refused of ours or
    # we withheld from it, by (peer, dataset).
    refused_from: Counter[bytes] = field(default_factory=Counter)
    withheld: Counter[tuple[bytes, str]] = field(default_factory=Counter)
    events: list[Event] = field(default_factory=list)
    send: Callable[[bytes, object], None] = lambda peer, message: None

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def disconnect(self, peer: bytes, reason: str) -> None:
        """Ask the driver to close every connection with `peer`, both directions (its
        address is known once it is a member; its proven id always is)."""
        self.emit(Disconnect(self.membership.address_of(peer), reason, peer))

    def refuse(self, sender: bytes, reason: str, *, disconnect: bool = False) -> None:
        """Count and report something refused from `sender` (and drop it, if asked)."""
        self.counters["records_refused"] += 1
        self.refused_from[sender] += 1
        self.emit(PeerRefused(sender, reason))
        if disconnect:
            self.disconnect(sender, reason)

