"""Probing: SWIM failure detection with Lifeguard's nacks, and the confirmation pings of
pending members.

Rules:
1. Every (awareness-scaled) probe interval we ping the next member of a shuffled
   round-robin order of the alive and suspect members, so each is probed within two
   rounds. No ack within the probe timeout: we ask `indirect_probes` others to ping it for
   us (PingRequest); they answer Ack, or Nack if the target stayed silent. No ack by the end
   of the interval: we suspect the target. A ping to a member we suspect carries the
   suspicion, so that it refutes at once (memberlist).
2. Acks and nacks count only from the member they are expected from; pings meant for
   another node id are ignored. An ack goes to the pinger's advertised address when we
   know it, else to the reply address the ping names (a joiner we do not know yet), then
   drawing on the confirmation pings' token bucket (confirming.py).
3. Indirect probes are run by relays, which dial only known members (relaying.py).
4. A pending member gets confirmation pings, on a token bucket (confirming.py rule 1).
5. A pinger we do not know at all is answered and asked for its state, on the same bucket
   (confirming.py rule 2).
6. Lifeguard's local health, from our own lateness: the end of a probe (the probe tick)
   run more than `LATE_TIMER_FRACTION` of the probe timeout after it fell due means our
   own loop was starved (a loaded host, a pause). The target's ack
   may then be sitting unread, so the failure of that probe says nothing about the
   target: we raise no suspicion from it (counted as `suspicions_withheld`) and probe the
   same target again next, so that a probe that runs on time judges it one probe interval
   later, not a whole round of members later. Nor does lateness raise our awareness
   score: that would stretch our probe interval for many probes after a moment of load,
   and so slow the detection of real failures for tens of seconds.
7. A new member's first probe may fail without a suspicion (`first_probes_forgiven`): that
   first exchange costs two fresh authenticated connections (our dial for the ping, its
   dial back for the ack), on a member that has just started and meets the whole cluster
   at once. It is probed again next, and that probe counts as usual, so a member that
   dies right after joining is still found, one probe interval later.
"""

from __future__ import annotations

import dataclasses
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ...config import MembershipConfig
from ..events import Address
from .awareness import Awareness
from .confirming import Confirmations
from .members import ALIVE, SUSPECT, Entry
from .messages import (
    Ack,
    Nack,
    Ping,
    PingRequest,
    Roots,
    Suspect,
    Updates,
    statement_size_bytes,
)
from .outbox import Outbox
from .relaying import Relays
from .state import MemberTable

__all__ = ["Prober"]

PROBE = "probe"
# Rule 6: a probe timer run this fraction of the probe timeout after it fell due shows
# that our own loop was starved. An ack on a LAN takes milliseconds and a healthy loop
# runs a timer within a few, so half the timeout (250 ms by default) is far beyond any
# healthy jitter while still catching a loop that stalled long enough to miss an ack.
LATE_TIMER_FRACTION = 0.5


@dataclass(slots=True)
class _Probe:
    sequence: int
    target: bytes
    acked: bool = False
    relays: frozenset[bytes] = frozenset()
    nacks: set[bytes] = field(default_factory=set)
    late: bool = False  # its end ran late (rule 6)


class Prober:
    def __init__(
        self,
        config: MembershipConfig,
        *,
        rng: random.Random,
        table: MemberTable,
        outbox: Outbox,
        awareness: Awareness,
        piggyback: Callable[..., Updates],
        roots: Callable[..., Roots],
        now: float,
    ) -> None:
        self._config = config
        self._rng = rng
        self._table = table
        self._outbox = outbox
        self._awareness = awareness
        self._piggyback = piggyback
        # (recipient, now[, answering]): our digest roots for a message to a member, when it
        # is owed them or the message answers one that carried its roots (roots.py).
        self._roots = roots
        self._order: list[bytes] = []
        self._index = 0
        self._probe: _Probe | None = None
        self._sequence = 0
        parts = {"table": table, "outbox": outbox, "next_sequence": self._next_sequence,
                 "ping": self._ping}
        self.relays = Relays(config, piggyback=piggyback, roots=roots, **parts)
        self.confirmations = Confirmations(config, now=now, **parts)
        # New members whose first probe is still to come (rule 7), oldest first.
        self._first_probe: OrderedDict[bytes, None] = OrderedDict()
        # When the probe tick is due (rule 6 compares it with when it runs).
        self._tick_at = now + rng.uniform(0, config.probe_interval_s)
        outbox.timers.set(PROBE, self._tick_at)

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    # ---- the probe cycle --------------------------------------------------------------

    def tick(self, now: float) -> None:
        if self._probe is not None and self._late(self._tick_at, now):
            self._probe.late = True
        self._finish(now)
        self._tick_at = now + self._awareness.scale(self._config.probe_interval_s)
        self._outbox.timers.set(PROBE, self._tick_at)
        self.confirmations.confirm_pending(now)
        target = self._next_target()
        if target is None:
            return
        self._sequence += 1
        self._probe = _Probe(self._sequence, target.node_id)
        self._outbox.statistics["probes"] += 1
        ping = self._ping(self._sequence, target.node_id, now)
        if target.state == SUSPECT:
            # memberlist: a suspect is told so in the ping itself, and refutes at once
            # (the broadcast of the suspicion may long be spent).
            notice = Suspect(target.node_id, target.incarnation, self._table.local.node_id)
            updates = ping.updates
            ping = dataclasses.replace(
                ping, updates=dataclasses.replace(updates, suspect=(*updates.suspect, notice))
            )
        self._outbox.send(target.address, ping, target.node_id)
        timeout_at = now + self._awareness.scale(self._config.probe_timeout_s)
        self._outbox.timers.set(("probe_timeout", self._sequence), timeout_at)

    def _late(self, due: float, now: float) -> bool:
        """Rule 6: did a timer due at `due` run so late that our loop was starved?"""
        return now - due > LATE_TIMER_FRACTION * self._config.probe_timeout_s

    def stop(self) -> None:
        self._outbox.timers.cancel(PROBE)

    def _next_target(self) -> Entry | None:
        for _ in range(2):
            while self._index < len(self._order):
                entry = self._table.members.get(self._order[self._index])
                self._index += 1
                if entry is not None and entry.node_id in self._table.reachable:
                    return entry
            self._order = list(self._table.reachable.items)
            self._rng.shuffle(self._order)
            self._index = 0
        return None

    def probe_soon(self, node_id: bytes) -> None:
        """A newcomer is probed within this round, at a random place in the order; a
        failure of that first probe is forgiven (rule 7)."""
        position = self._rng.randint(self._index, len(self._order))
        self._order.insert(position, node_id)
        self._first_probe[node_id] = None
        while len(self._first_probe) > self._config.members_max:
            self._first_probe.popitem(last=False)

    def timeout(self, sequence: int) -> None:
        """No direct ack in time: ask others to probe the target for us."""
        probe = self._probe
        target = None if probe is None else self._table.members.get(probe.target)
        if probe is None or probe.sequence != sequence or probe.acked or target is None:
            return
        candidates = [n for n in self._table.reachable.items if n != target.node_id]
        relays = self._rng.sample(candidates, min(self._config.indirect_probes, len(candidates)))
        probe.relays = frozenset(relays)
        host, port = self._table.local.address
        for node_id in relays:
            request = PingRequest(
                sequence,
                target.node_id,
                target.alive.host,
                target.alive.port,
                host,
                port,
                self._piggyback(),
            )
            self._outbox.send(self._table.members[node_id].address, request, node_id)

    def _finish(self, now: float) -> None:
        probe, self._probe = self._probe, None
        if probe is None:
            return
        first = probe.target in self._first_probe
        self._first_probe.pop(probe.target, None)
        if probe.acked:
            return
        self._outbox.timers.cancel(("probe_timeout", probe.sequence))
        if probe.late or first:
            # Rule 6: we were the slow one, the target may well have answered; rule 7: its
            # first answer may be slow. Either way the next probe, to the same target,
            # decides.
            reason = "suspicions_withheld" if probe.late else "first_probes_forgiven"
            self._outbox.statistics[reason] += 1
            self._order.insert(self._index, probe.target)
            return
        self._outbox.statistics["probe_failures"] += 1
        # Lifeguard: relays that nacked show the network works, so the target is at fault;
        # missing nacks (or no relays at all) hint that we are the slow one.
        missing = len(probe.relays) - len(probe.nacks) if probe.relays else 1
        self._awareness.apply(missing)
        entry = self._table.members.get(probe.target)
        if entry is not None and entry.state == ALIVE:
            # A new suspicion that starts here (not one heard from others).
            self._outbox.statistics["suspicions_raised"] += 1
        if entry is not None and entry.state in (ALIVE, SUSPECT):
            own_id = self._table.local.node_id
            self._table.claims.apply_suspect(
                Suspect(entry.node_id, entry.incarnation, own_id), own_id, now
            )

    # ---- messages ---------------------------------------------------------------------

    def on_ping(self, sender: bytes, ping: Ping, now: float) -> None:
        if ping.target != self._table.local.node_id:
            self._outbox.statistics["misdirected_pings"] += 1
            return
        address = self._address_of(sender)
        if address is None:
            # A pinger we do not know (a joiner): its reply address, at the bucket's pace.
            if not self.confirmations.take_token(now):
                self._outbox.statistics["acks_refused"] += 1
                return
            address = (ping.reply_host, ping.reply_port)
            self.confirmations.introduce(sender, address, now)
        # Roots answer roots (roots.py rule 7): a pinger that sent its own gets ours.
        roots = self._roots(sender, now, bool(ping.roots))
        self._outbox.send(address, Ack(ping.sequence, self._piggyback(), roots), sender)

    def ask_roots(self, target: Entry, now: float) -> bool:
        """A ping to `target` carrying our roots, which it answers with its own (roots.py
        rule 7); no probe: its ack, matched by no probe, is ignored but for the roots. False,
        sending nothing, when there are no roots for it to hear."""
        ping = self._ping(self._next_sequence(), target.node_id, now)
        if not ping.roots:
            return False
        self._outbox.statistics["roots_asked"] += 1
        self._outbox.send(target.address, ping, target.node_id)
        return True

    def on_ack(self, sender: bytes, ack: Ack, now: float) -> None:
        probe = self._probe
        if probe is not None and probe.sequence == ack.sequence:
            if (sender == probe.target or sender in probe.relays) and not probe.acked:
                probe.acked = True
                self._awareness.apply(-1)
            return
        self.relays.on_ack(sender, ack, now)

    def on_nack(self, sender: bytes, nack: Nack) -> None:
        probe = self._probe
        if probe is not None and probe.sequence == nack.sequence and sender in probe.relays:
            probe.nacks.add(sender)

    def _address_of(self, node_id: bytes) -> Address | None:
        entry = self._table.members.get(node_id)
        if entry is not None:
            return entry.address
        waiting = self._table.pending.get(node_id)
        return None if waiting is None else (waiting.alive.host, waiting.alive.port)

    def _ping(self, sequence: int, target: bytes, now: float, *,
              introduce: bool = False) -> Ping:
        """A ping with piggybacked statements; with `introduce`, our own alive statement
        among them (confirming.py rule 1), within the same byte budget."""
        host, port = self._table.local.address
        roots = self._roots(target, now)
        if not introduce:
            return Ping(sequence, target, host, port, self._piggyback(), roots)
        own = self._table.local.alive
        updates = self._piggyback(statement_size_bytes(own))
        if own not in updates.alive:
            updates = dataclasses.replace(updates, alive=(own, *updates.alive))
        return Ping(sequence, target, host, port, updates, roots)
