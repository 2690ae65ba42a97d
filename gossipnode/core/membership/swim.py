"""The membership core: SWIM failure detection with the Lifeguard refinements, sans-IO.

Theory of operation (SWIM, Das et al. 2002; Lifeguard, Dadgar et al. 2018; memberlist):
1. Probing. Every (awareness-scaled) probe interval we ping the next member of a shuffled
   round-robin order of the alive and suspect members, so each is probed within two rounds.
   No ack within the probe timeout: we ask `indirect_probes` others to ping it for us
   (PingRequest); they answer Ack, or Nack if the target stayed silent. No ack by the end of
   the interval: we suspect the target.
2. Suspicion. A suspect has a timeout (see suspicion.py) that shrinks as other members
   confirm; when it runs out, the suspect is dead. A member that hears it is suspected or
   dead refutes with a higher incarnation.
3. Precedence per member, by incarnation (SWIM): an alive statement replaces anything of a
   lower incarnation; suspect replaces alive of the same or a lower one; dead and left
   replace alive or suspect of the same or a lower one. Alive and left are signed by the
   subject, so nobody else can make them (messages.py).
4. Dissemination. Every accepted change is queued (broadcast.py) and piggybacked on pings,
   acks and ping requests, and sent as Gossip to `gossip_fanout` members each gossip
   interval while anything is queued. Every push-pull interval (longer in large clusters,
   whose full state is larger) we swap full state with one random member, the dead
   included, so that long partitions heal.
5. Join sends a push-pull to the seeds; while we know nobody, the push-pull timer retries
   them every `join_retry_interval_s`. Leave signs `left`, pushes it out, and stops
   probing; `next_deadline()` becomes None once the left statement has been sent its full
   retransmit count, and the shell may then exit. Dead and left members are forgotten
   `reap_after_s` after they went.

Incarnations: the shell passes the incarnation to start with and must pass a higher one
after a restart (persist `local_member.incarnation`, or use wall-clock milliseconds, which
only grow). Should it not, the node still recovers: a statement about itself from its
former life makes it refute with a higher incarnation.

Sender identity: `receive(sender, ...)` takes the node id proven by the secure channel. Acks
and nacks count only from the member they are expected from; pings meant for another node
id are ignored; acks go to the reply address the ping names (the sender may not know us yet).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ...config import MembershipConfig
from ..errors import LocalProtocolError, RemoteProtocolError
from ..events import Address, Event
from ..records import NODE_ID_BYTES
from .awareness import Awareness
from .members import ALIVE, DEAD, LEFT, SUSPECT, Entry, Member
from .messages import (
    Ack,
    Gossip,
    Left,
    Nack,
    Ping,
    PingRequest,
    PushPull,
    Suspect,
    Updates,
    check_address,
    check_tags,
    check_updates,
    left_signed_bytes,
    tags_tuple,
)
from .state import MemberTable, Outbox

__all__ = ["Membership", "push_pull_interval_s"]

# A piggybacked batch holds at most this many statements: the smallest statement is
# estimated above 64 bytes, so an honest batch within gossip_message_bytes_max never hits it.
STATEMENT_BYTES_MIN = 64
# handle_timer runs due timers in passes (a timer may set another already due); this many
# passes is far beyond any honest chain and stops a bug from looping forever.
TIMER_PASSES_MAX = 64

_PROBE = "probe"
_GOSSIP = "gossip"
_PUSH_PULL = "push_pull"
_RECONNECT = "reconnect"


def push_pull_interval_s(config: MembershipConfig, members: int) -> float:
    """The push-pull interval for `members` members: `push_pull_interval_s`, times
    ceil(log2(n) - log2(threshold)) + 1 above `push_pull_scale_threshold` (memberlist)."""
    interval_s, threshold = config.push_pull_interval_s, config.push_pull_scale_threshold
    if threshold <= 0 or members <= threshold:
        return interval_s
    return interval_s * (math.ceil(math.log2(members) - math.log2(threshold)) + 1)


@dataclass(slots=True)
class _Probe:
    sequence: int
    target: bytes
    acked: bool = False
    relays: frozenset[bytes] = frozenset()
    nacks: set[bytes] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Relay:
    requester: bytes
    requester_address: Address
    sequence: int  # the requester's
    target: bytes


class Membership:
    """One member's view of the cluster. See the module docstring for the rules."""

    def __init__(
        self,
        config: MembershipConfig,
        *,
        node_id: bytes,
        name: str,
        address: Address,
        tags: Mapping[str, str],
        incarnation: int,
        rng: random.Random,
        now: float,
        sign: Callable[[bytes], bytes],
        verify: Callable[[bytes, bytes, bytes], bool],
    ) -> None:
        if len(node_id) != NODE_ID_BYTES:
            raise LocalProtocolError(f"a node id is {NODE_ID_BYTES} bytes")
        if incarnation < 0:
            raise LocalProtocolError("incarnation must not be negative")
        for setting in ("probe_interval_s", "gossip_interval_s", "push_pull_interval_s"):
            if not getattr(config, setting) > 0:
                raise LocalProtocolError(f"membership.{setting} must be positive")
        pairs = tags_tuple(tags)
        check_tags(pairs, config.tags_bytes_max, LocalProtocolError)
        self._config = config
        self._rng = rng
        self._node_id = node_id
        self._outbox = Outbox()
        self._awareness = Awareness(config.awareness_max)
        self._table = MemberTable(
            config,
            node_id=node_id,
            name=name,
            address=address,
            tags=pairs,
            incarnation=incarnation,
            now=now,
            sign=sign,
            verify=verify,
            outbox=self._outbox,
            awareness=self._awareness,
            on_new_member=self._probe_soon,
        )
        self._sign = sign
        self._probe_order: list[bytes] = []
        self._probe_index = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._sequence = 0
        self._seeds: tuple[Address, ...] = ()
        self._timers = self._outbox.timers
        # Set by leave(): we announced our leave and only finish spreading it.
        self.left = False
        # Random phases, so that members started together do not probe in lockstep.
        self._timers.set(_PROBE, now + rng.uniform(0, config.probe_interval_s))
        self._timers.set(_GOSSIP, now + rng.uniform(0, config.gossip_interval_s))
        self._timers.set(_PUSH_PULL, now + rng.uniform(0.5, 1) * config.push_pull_interval_s)
        self._timers.set(_RECONNECT, now + rng.uniform(0.5, 1) * config.reconnect_interval_s)

    # ---- queries ----------------------------------------------------------------------

    @property
    def local_member(self) -> Member:
        return self._table.local.snapshot()

    def member(self, node_id: bytes) -> Member | None:
        entry = self._table.members.get(node_id)
        return None if entry is None else entry.snapshot()

    def members(self) -> list[Member]:
        """Every member we know, ourselves included, dead and left ones until reaped."""
        return [entry.snapshot() for entry in self._table.members.values()]

    def alive_members(self) -> list[Member]:
        return [entry.snapshot() for entry in self._table.members.values() if entry.state == ALIVE]

    def states(self) -> dict[bytes, str]:
        """node id -> state, cheaply (no snapshots): for tests and simulations."""
        return {node_id: entry.state for node_id, entry in self._table.members.items()}

    def counts(self) -> Counter[str]:
        """How many members (ourselves included) are in each state."""
        return Counter(entry.state for entry in self._table.members.values())

    def statistics(self) -> dict[str, int]:
        """Counters: sent_<message>, received_<message>; suspicions (entered, ours or heard),
        suspicions_raised (started by our own failed probe), refutations, deaths, revivals,
        refused (statements with bad signatures), probes, probe_failures, reaped, ...; and
        the current awareness score and number of statements queued for broadcast."""
        return {
            **self._outbox.statistics,
            "awareness": self._awareness.score,
            "broadcasts_queued": len(self._outbox.broadcasts),
        }

    def next_deadline(self) -> float | None:
        return self._timers.next()

    def events(self) -> list[Event]:
        """Drain the Sends and MemberChanged facts produced since the last call."""
        events, self._outbox.events = self._outbox.events, []
        return events

    # ---- commands ---------------------------------------------------------------------

    def join(self, seeds: Sequence[Address], now: float) -> None:
        """Swap full state with every seed (our own address is skipped); retried each
        push-pull interval while we know no other member."""
        if self.left:
            raise LocalProtocolError("a member that left cannot join again; restart it")
        own = self._table.local.address
        self._seeds = tuple(tuple(seed) for seed in seeds if tuple(seed) != own)
        for seed in self._seeds:
            self._outbox.send(seed, PushPull(True, self._table.full_state()))
        if self._seeds:  # retried soon if no seed answers (see _push_pull_tick)
            self._timers.set(_PUSH_PULL, now + self._config.join_retry_interval_s)

    def leave(self, now: float) -> None:
        """Announce a graceful leave (signed) and stop probing. The shell keeps running the
        core (it still answers pings) until `next_deadline()` is None, which it becomes once
        the left statement has been sent its full retransmit count, then exits."""
        if self.left:
            return
        self.left = True
        self._table.leaving = True
        incarnation = self._table.local.incarnation
        left = Left(
            self._node_id,
            incarnation,
            self._sign(left_signed_bytes(self._node_id, incarnation)),
        )
        self._table.local.left = left
        self._table.local.set_state(LEFT, now)
        self._outbox.changed(self._table.local)
        self._outbox.broadcasts.push(left)
        for key in (_PROBE, _PUSH_PULL, _GOSSIP, _RECONNECT):
            self._timers.cancel(key)
        self._gossip(now)

    def force_leave(self, node_id: bytes, now: float) -> bool:
        """The operator says a dead member is gone for good: mark it left and reap it now,
        in this member's view (a left statement must be signed by the member itself, so
        nothing is broadcast). Returns False, changing nothing, unless it is dead."""
        entry = self._table.members.get(node_id)
        if entry is None or entry.state != DEAD:
            return False
        self._table.gone(entry, LEFT, now)
        self._timers.cancel(("reap", node_id))
        self._table.reap(node_id, now)
        return True

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        """Advertise new tags: a new signed alive statement at a higher incarnation."""
        if self.left:
            raise LocalProtocolError("a member that left cannot change its tags")
        pairs = tags_tuple(tags)
        check_tags(pairs, self._config.tags_bytes_max, LocalProtocolError)
        if pairs != self._table.local.tags:
            alive = self._table.local.alive
            self._table.set_local_alive(
                alive.name, (alive.host, alive.port), self._table.local.incarnation + 1, pairs, now
            )

    # ---- inputs -----------------------------------------------------------------------

    def receive(self, sender: bytes, message: object, now: float) -> None:
        """Handle one message from `sender` (the node id the secure channel proved).

        Raises:
            RemoteProtocolError: a malformed message; nothing was applied. Statements with bad
                signatures are refused one by one (PeerRefused events), the rest applied.
        """
        kind = type(message).__name__
        if isinstance(message, Ping | Ack | PingRequest | Gossip):
            batch_max = self._config.gossip_message_bytes_max // STATEMENT_BYTES_MIN
            check_updates(message.updates, self._config, batch_max)
            updates = message.updates
        elif isinstance(message, PushPull):
            check_updates(message.state, self._config, 4 * self._config.members_max)
            updates = message.state
        elif isinstance(message, Nack):
            updates = Updates()
        else:
            raise RemoteProtocolError(f"not a membership message: {kind}")
        sequenced = isinstance(message, Ping | Ack | PingRequest | Nack)
        if sequenced and type(message.sequence) is not int:
            raise RemoteProtocolError("a sequence number must be an integer")
        if isinstance(message, Ping | PingRequest):
            check_address(message.reply_host, message.reply_port)
            if not isinstance(message.target, bytes) or len(message.target) != NODE_ID_BYTES:
                raise RemoteProtocolError(f"a target is a {NODE_ID_BYTES}-byte node id")
        if isinstance(message, PingRequest):
            check_address(message.target_host, message.target_port)
        if isinstance(message, PushPull) and type(message.reply_wanted) is not bool:
            raise RemoteProtocolError("reply_wanted must be a boolean")
        self._outbox.statistics[f"received_{kind}"] += 1
        self._table.apply(updates, sender, now, from_push_pull=isinstance(message, PushPull))
        if isinstance(message, Ping):
            self._on_ping(sender, message)
        elif isinstance(message, Ack):
            self._on_ack(sender, message)
        elif isinstance(message, PingRequest):
            self._on_ping_request(sender, message, now)
        elif isinstance(message, Nack):
            probe = self._probe
            if probe is not None and probe.sequence == message.sequence and sender in probe.relays:
                probe.nacks.add(sender)
        elif isinstance(message, PushPull) and message.reply_wanted:
            entry = self._table.members.get(sender)
            if entry is not None and entry.state != LEFT:
                self._outbox.send(entry.address, PushPull(False, self._table.full_state()))

    def handle_timer(self, now: float) -> None:
        """Run every timer due at `now`."""
        for _ in range(TIMER_PASSES_MAX):
            due = self._timers.pop_due(now)
            if not due:
                return
            for key in due:
                if key == _PROBE:
                    self._probe_tick(now)
                elif key == _GOSSIP:
                    self._gossip(now)
                elif key == _PUSH_PULL:
                    self._push_pull_tick(now)
                elif key == _RECONNECT:
                    self._reconnect_tick(now)
                else:
                    kind, value = key
                    if kind == "probe_timeout":
                        self._probe_timeout(value)
                    elif kind == "relay":
                        self._relay_timeout(value)
                    elif kind == "suspicion":
                        self._table.suspicion_timeout(value, now)
                    else:
                        assert kind == "reap", key
                        self._table.reap(value, now)
        raise AssertionError("timers keep falling due: a timer sets itself in the past")

    # ---- probing ----------------------------------------------------------------------

    def _probe_tick(self, now: float) -> None:
        self._finish_probe(now)
        self._timers.set(_PROBE, now + self._awareness.scale(self._config.probe_interval_s))
        target = self._next_probe_target()
        if target is None:
            return
        self._sequence += 1
        self._probe = _Probe(self._sequence, target.node_id)
        self._outbox.statistics["probes"] += 1
        self._outbox.send(target.address, self._ping(self._sequence, target.node_id))
        timeout_at = now + self._awareness.scale(self._config.probe_timeout_s)
        self._timers.set(("probe_timeout", self._sequence), timeout_at)

    def _next_probe_target(self) -> Entry | None:
        for _ in range(2):
            while self._probe_index < len(self._probe_order):
                entry = self._table.members.get(self._probe_order[self._probe_index])
                self._probe_index += 1
                if entry is not None and entry.node_id in self._table.reachable:
                    return entry
            self._probe_order = list(self._table.reachable.items)
            self._rng.shuffle(self._probe_order)
            self._probe_index = 0
        return None

    def _probe_soon(self, node_id: bytes) -> None:
        """A newcomer is probed within this round, at a random place in the order."""
        position = self._rng.randint(self._probe_index, len(self._probe_order))
        self._probe_order.insert(position, node_id)

    def _probe_timeout(self, sequence: int) -> None:
        """No direct ack in time: ask others to probe the target for us."""
        probe = self._probe
        target = None if probe is None else self._table.members.get(probe.target)
        if probe is None or probe.sequence != sequence or probe.acked or target is None:
            return
        candidates = [n for n in self._table.reachable.items if n != target.node_id]
        relays = self._rng.sample(candidates, min(self._config.indirect_probes, len(candidates)))
        probe.relays = frozenset(relays)
        for node_id in relays:
            host, port = self._table.local.address
            request = PingRequest(
                sequence,
                target.node_id,
                target.alive.host,
                target.alive.port,
                host,
                port,
                self._piggyback(),
            )
            self._outbox.send(self._table.members[node_id].address, request)

    def _finish_probe(self, now: float) -> None:
        probe, self._probe = self._probe, None
        if probe is None or probe.acked:
            return
        self._timers.cancel(("probe_timeout", probe.sequence))
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
            self._table.apply_suspect(Suspect(entry.node_id, entry.incarnation, self._node_id), now)

    def _on_ping(self, sender: bytes, ping: Ping) -> None:
        if ping.target != self._node_id:
            self._outbox.statistics["misdirected_pings"] += 1
            return
        reply_to = (ping.reply_host, ping.reply_port)
        self._outbox.send(reply_to, Ack(ping.sequence, self._piggyback()))

    def _on_ack(self, sender: bytes, ack: Ack) -> None:
        probe = self._probe
        if probe is not None and probe.sequence == ack.sequence:
            if (sender == probe.target or sender in probe.relays) and not probe.acked:
                probe.acked = True
                self._awareness.apply(-1)
            return
        relay = self._relays.get(ack.sequence)
        if relay is not None and sender == relay.target:
            del self._relays[ack.sequence]
            self._timers.cancel(("relay", ack.sequence))
            self._outbox.send(relay.requester_address, Ack(relay.sequence, self._piggyback()))

    def _on_ping_request(self, sender: bytes, request: PingRequest, now: float) -> None:
        self._sequence += 1
        reply_to = (request.reply_host, request.reply_port)
        self._relays[self._sequence] = _Relay(sender, reply_to, request.sequence, request.target)
        target_address = (request.target_host, request.target_port)
        self._outbox.send(target_address, self._ping(self._sequence, request.target))
        self._timers.set(("relay", self._sequence), now + self._config.probe_timeout_s)

    def _ping(self, sequence: int, target: bytes) -> Ping:
        host, port = self._table.local.address
        return Ping(sequence, target, host, port, self._piggyback())

    def _relay_timeout(self, sequence: int) -> None:
        relay = self._relays.pop(sequence, None)
        if relay is not None:
            self._outbox.send(relay.requester_address, Nack(relay.sequence))

    # ---- dissemination ----------------------------------------------------------------

    def _retransmit_limit(self) -> int:
        # memberlist: retransmit_mult * ceil(log10(n + 1)) sends per statement.
        return self._config.retransmit_mult * math.ceil(math.log10(len(self._table.members) + 1))

    def _piggyback(self) -> Updates:
        if not self._outbox.broadcasts:
            return Updates()
        return self._outbox.broadcasts.take(
            self._config.gossip_message_bytes_max, self._retransmit_limit()
        )

    def _gossip(self, now: float) -> None:
        if self._outbox.broadcasts:
            reachable = self._table.reachable.items
            for node_id in self._rng.sample(
                reachable, min(self._config.gossip_fanout, len(reachable))
            ):
                updates = self._piggyback()
                if not updates:
                    break
                self._outbox.send(self._table.members[node_id].address, Gossip(updates))
        # After a leave, gossip only while there is something left to tell someone.
        if not self.left or (self._outbox.broadcasts and self._table.reachable):
            self._timers.set(_GOSSIP, now + self._config.gossip_interval_s)

    def _reconnect_tick(self, now: float) -> None:
        """After serf's reconnect: now and then swap full state with one member we believe
        dead, so that the two sides of a healed partition find each other well before the
        next push-pull (whose interval grows with the cluster). The chance is dead / alive,
        so a healthy cluster spends nothing on it."""
        self._timers.set(_RECONNECT, now + self._config.reconnect_interval_s)
        dead = [e for e in self._table.members.values() if e.state == DEAD]
        if not dead:
            return
        alive = sum(1 for e in self._table.members.values() if e.state in (ALIVE, SUSPECT))
        if self._rng.random() < len(dead) / max(1, alive):
            partner = self._rng.choice(dead)
            self._outbox.statistics["reconnects"] += 1
            self._outbox.send(partner.address, PushPull(True, self._table.full_state()))

    def _push_pull_tick(self, now: float) -> None:
        interval_s = push_pull_interval_s(self._config, len(self._table.members))
        self._timers.set(_PUSH_PULL, now + interval_s)
        self._outbox.statistics["push_pulls"] += 1
        others = [
            entry
            for entry in self._table.members.values()
            if entry is not self._table.local and entry.state != LEFT
        ]
        if others:
            partner = self._rng.choice(others)
            self._outbox.send(partner.address, PushPull(True, self._table.full_state()))
        else:
            if self._seeds:
                self._timers.set(_PUSH_PULL, now + self._config.join_retry_interval_s)
            for seed in self._seeds:
                self._outbox.send(seed, PushPull(True, self._table.full_state()))
