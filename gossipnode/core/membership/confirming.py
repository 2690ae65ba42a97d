"""Confirmation pings of pending members, and introductions to pingers we do not know, on
one token bucket.

Rules:
1. A pending member (pending.py) gets a confirmation ping when it arrives in a full state
   (a push-pull: a join's answer names members that have not heard of us), or at the next
   probe tick when it arrives in gossip: a member we first hear of by gossip has most
   likely just joined and is pinging every member its seed named, us among them, so its
   own ping confirms it and ours would only cross it (members started together pinged
   each other both ways: two pings and two acks per pair, not one of each). Then again
   every two probe intervals while it waits; the pings draw on a token bucket
   (`confirm_pings_burst`, `confirm_pings_per_s`), so forged members cannot make us dial
   without bound. (These repeats are where the simulator's partition-heal sends more
   pings than acks, from about 700 members: the bucket lets a member send about 416
   confirmation pings in the 5 s warm-up, too few to confirm every pair, and members
   still pending when the cluster splits are pinged across the split every two
   intervals until they expire, each ping lost at the dial or held until the heal; no
   ping is refused by its receiver. Doubling the wait after each unanswered ping cut
   those pings but not the traffic: the statements they carried went by gossip instead,
   and with the bucket and pending set scaled to 1,000 members' shortfall, 300 members
   sent 5% more messages and converged 11 s after the heal instead of 6.) Its ack (like
   anything else it sends) confirms it. A confirmation ping
   always carries our own signed alive statement: the pending member most likely has not
   heard of us yet (a joiner confirms what its seed told it before its own alive statement
   spread), and learns us first-hand from the ping instead of asking (rule 2). Without it,
   each of a joiner's confirmation pings past its alive statement's retransmit count drew
   an introduction and the joiner's full state in reply: a cluster of n members starting
   together swapped on the order of n**2 full states, n**3 statements.
2. A pinger we do not know at all (its alive statement never reached us, or we forgot it
   pending) is answered, and also sent a push-pull that wants a reply and carries only our
   own alive statement: its reply (its full state, its own alive statement first-hand)
   makes it a member. Once per pinger per `pending_expiry_s`, on the same token bucket.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from ...config import MembershipConfig
from ..events import Address
from .messages import Ping, PushPull, Updates
from .outbox import Outbox
from .state import MemberTable

__all__ = ["Confirmations"]


class Confirmations:
    """`next_sequence` and `ping` are the prober's: its acks are matched by sequence."""

    def __init__(
        self,
        config: MembershipConfig,
        *,
        table: MemberTable,
        outbox: Outbox,
        next_sequence: Callable[[], int],
        ping: Callable[..., Ping],
        now: float,
    ) -> None:
        self._config = config
        self._table = table
        self._outbox = outbox
        self._next_sequence = next_sequence
        self._ping = ping
        self._tokens = float(config.confirm_pings_burst)
        self._tokens_at = now
        # Unknown pingers we asked for their state, and when (rule 2).
        self._introduced: OrderedDict[bytes, float] = OrderedDict()

    def confirm(self, node_id: bytes, now: float) -> None:
        """Ping a pending member now, if the token bucket allows."""
        waiting = self._table.pending.get(node_id)
        if waiting is None or not self.take_token(now):
            return
        waiting.pinged_at = now
        sequence = self._next_sequence()
        address = (waiting.alive.host, waiting.alive.port)
        self._outbox.send(address, self._ping(sequence, node_id, now, introduce=True), node_id)

    def confirm_pending(self, now: float) -> None:
        """Forget the pending members that expired; ping those due again."""
        self._outbox.statistics["pending_expired"] += self._table.pending.expire(now)
        interval_s = 2 * self._config.probe_interval_s
        for waiting in self._table.pending.due_pings(now, interval_s):
            self.confirm(waiting.alive.node_id, now)

    def take_token(self, now: float) -> bool:
        elapsed_s = max(0.0, now - self._tokens_at)
        self._tokens_at = now
        self._tokens = min(
            float(self._config.confirm_pings_burst),
            self._tokens + elapsed_s * self._config.confirm_pings_per_s,
        )
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def introduce(self, sender: bytes, address: Address, now: float) -> None:
        """Rule 2: ask a pinger we do not know for its state, giving only our own alive
        statement (small, so no amplification), at most once per sender per
        `pending_expiry_s`."""
        introduced = self._introduced.get(sender)
        if introduced is not None and introduced + self._config.pending_expiry_s > now:
            return
        self._introduced[sender] = now
        self._introduced.move_to_end(sender)
        while len(self._introduced) > self._config.pending_members_max:
            self._introduced.popitem(last=False)
        own = Updates(alive=(self._table.local.alive,))
        self._outbox.statistics["introductions"] += 1
        self._outbox.send(address, PushPull(True, own), sender)
