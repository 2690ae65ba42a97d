"""Indirect probes: a relay probes a target for another member (SWIM's ping request, with
Lifeguard's nack).

Rules:
1. A relay pings only a member it knows (alive or suspect), at the address that member
   signed, never an address the requester names; it answers at the requester's advertised
   address; it runs at most `relays_per_requester_max` probes for one requester and
   `relays_max` in all. So a requester cannot make us dial arbitrary addresses, nor grow
   our memory: refused requests are counted (`relays_refused`).
2. The target's ack is forwarded to the requester (with our own roots, never the
   target's); no ack within the probe timeout: a Nack, which tells the requester that the
   relay itself is fine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ...config import MembershipConfig
from .messages import Ack, Nack, Ping, PingRequest, Roots, Updates
from .outbox import Outbox
from .state import LIVE_STATES, MemberTable

__all__ = ["Relays"]


@dataclass(frozen=True, slots=True)
class _Relay:
    requester: bytes
    sequence: int  # the requester's
    target: bytes


class Relays:
    """The probes we run for others. `next_sequence` and `ping` are the prober's, so that
    our own probes and the relayed ones never share a sequence number."""

    def __init__(
        self,
        config: MembershipConfig,
        *,
        table: MemberTable,
        outbox: Outbox,
        piggyback: Callable[..., Updates],
        roots: Callable[[bytes, float], Roots],
        next_sequence: Callable[[], int],
        ping: Callable[..., Ping],
    ) -> None:
        self._config = config
        self._table = table
        self._outbox = outbox
        self._piggyback = piggyback
        self._roots = roots
        self._next_sequence = next_sequence
        self._ping = ping
        self._relays: dict[int, _Relay] = {}
        self._relays_by_requester: Counter[bytes] = Counter()

    @property
    def running(self) -> int:
        return len(self._relays)

    def on_ping_request(self, sender: bytes, request: PingRequest, now: float) -> None:
        requester = self._table.members.get(sender)
        target = self._table.members.get(request.target)
        if (
            requester is None
            or requester.state not in LIVE_STATES
            or target is None
            or target.state not in LIVE_STATES
            or request.target == self._table.local.node_id
            or self._relays_by_requester[sender] >= self._config.relays_per_requester_max
            or len(self._relays) >= self._config.relays_max
        ):
            self._outbox.statistics["relays_refused"] += 1
            return
        sequence = self._next_sequence()
        self._relays[sequence] = _Relay(sender, request.sequence, request.target)
        self._relays_by_requester[sender] += 1
        self._outbox.send(target.address, self._ping(sequence, target.node_id, now),
                          target.node_id)
        self._outbox.timers.set(("relay", sequence), now + self._config.probe_timeout_s)

    def on_ack(self, sender: bytes, ack: Ack, now: float) -> None:
        """An ack that is no answer to our own probe: forward it if it answers a relay."""
        relay = self._relays.get(ack.sequence)
        if relay is not None and sender == relay.target:
            self._end(ack.sequence)
            requester = self._table.members.get(relay.requester)
            if requester is not None:
                ack = Ack(relay.sequence, self._piggyback(), self._roots(relay.requester, now))
                self._outbox.send(requester.address, ack, relay.requester)

    def timeout(self, sequence: int) -> None:
        relay = self._relays.get(sequence)
        if relay is None:
            return
        self._end(sequence)
        requester = self._table.members.get(relay.requester)
        if requester is not None:
            self._outbox.send(requester.address, Nack(relay.sequence), relay.requester)

    def _end(self, sequence: int) -> None:
        relay = self._relays.pop(sequence)
        self._outbox.timers.cancel(("relay", sequence))
        self._relays_by_requester[relay.requester] -= 1
        if not self._relays_by_requester[relay.requester]:
            del self._relays_by_requester[relay.requester]
