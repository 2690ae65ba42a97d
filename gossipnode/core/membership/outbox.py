"""What a membership core produces, shared by its parts: events, counters, queued
broadcasts and its timers.

Every part (the member table, probing, dissemination, sync) writes here and nowhere else,
so `Membership.events()` drains one list and `statistics()` reads one counter.
"""

from __future__ import annotations

from collections import Counter

from ..events import Address, Event, MemberChanged, PeerRefused, Send
from .broadcast import BroadcastQueue
from .members import Entry
from .timers import Timers

__all__ = ["COUNTERS", "Outbox"]

# Counters that statistics() always reports (message counters appear once used).
COUNTERS = (
    "claims_over_signed",
    "deaths",
    "members_over_limit",
    "misdirected_pings",
    "names_refused",
    "pending_evicted",
    "pending_expired",
    "pending_confirmed",
    "probe_failures",
    "probes",
    "push_pulls",
    "reaped",
    "refused",
    "refutations",
    "relays_refused",
    "revivals",
    "suspicions",
    "suspicions_raised",
)


class Outbox:
    __slots__ = ("broadcasts", "events", "statistics", "timers")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.statistics: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self.broadcasts = BroadcastQueue()
        self.timers = Timers()

    def send(self, to: Address, message: object, peer: bytes | None = None) -> None:
        """Queue `message` for `to`; `peer`, when given, is the node id it is meant for (the
        shell then delivers it only over a connection that proved that id)."""
        self.statistics[f"sent_{type(message).__name__}"] += 1
        self.events.append(Send(to, message, peer))

    def refuse(self, sender: bytes, reason: str) -> None:
        self.statistics["refused"] += 1
        self.events.append(PeerRefused(sender, reason))

    def changed(self, entry: Entry) -> None:
        self.events.append(
            MemberChanged(
                node_id=entry.node_id,
                name=entry.alive.name,
                address=entry.address,
                state=entry.state,
                incarnation=entry.incarnation,
                tags=entry.tags,
            )
        )
