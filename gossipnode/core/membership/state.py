"""What one member believes about every member, and the SWIM rules that change it.

Rules (precedence per member, by incarnation; SWIM as memberlist implements it):
1. `alive` (signed by the subject) replaces anything of a lower incarnation. It is how a
   member joins, changes its tags or address, refutes a suspicion, and comes back.
2. `suspect` replaces `alive` of the same or a lower incarnation and starts a Lifeguard
   suspicion timer; further suspects of that incarnation from new reporters confirm it.
3. `dead` replaces `alive` or `suspect` of the same or a lower incarnation; `left` (signed
   by the subject) replaces anything but `left` of the same or a lower incarnation.
4. Statements about ourselves are never applied: a suspect or dead at our incarnation or
   above, or an alive or left from a former life, makes us refute with a higher incarnation.
5. A statement is checked for its signature only when it would change something, so
   replays of old statements cost nothing. A bad signature is refused (PeerRefused) and
   changes nothing.
6. Every accepted change is queued for broadcast and reported (MemberChanged).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ...config import MembershipConfig
from ..events import Address, Event, MemberChanged, PeerRefused, Send
from .awareness import Awareness
from .broadcast import BroadcastQueue
from .members import ALIVE, DEAD, LEFT, SUSPECT, Entry
from .messages import (
    Alive,
    Dead,
    Left,
    Suspect,
    Tags,
    Updates,
    alive_signed_bytes,
    left_signed_bytes,
)
from .suspicion import Suspicion, suspicion_bounds_s
from .timers import IndexedSet, Timers

__all__ = ["COUNTERS", "MemberTable", "Outbox"]

# Counters that statistics() always reports (message counters appear once used).
COUNTERS = (
    "deaths",
    "members_over_limit",
    "misdirected_pings",
    "probe_failures",
    "probes",
    "push_pulls",
    "reaped",
    "refused",
    "refutations",
    "revivals",
    "suspicions",
    "suspicions_raised",
)


class Outbox:
    """What a core produces, shared by its parts: events, counters, queued broadcasts, and
    its timers."""

    __slots__ = ("broadcasts", "events", "statistics", "timers")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.statistics: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self.broadcasts = BroadcastQueue()
        self.timers = Timers()

    def send(self, to: Address, message: object) -> None:
        self.statistics[f"sent_{type(message).__name__}"] += 1
        self.events.append(Send(to, message))

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


class MemberTable:
    """The members we know, ourselves included, and the rules above.

    `reachable` holds the other members that are alive or suspect: the ones to probe and
    gossip to. `on_new_member` is told of each member the first time we accept it.
    """

    def __init__(
        self,
        config: MembershipConfig,
        *,
        node_id: bytes,
        name: str,
        address: Address,
        tags: Tags,
        incarnation: int,
        now: float,
        sign: Callable[[bytes], bytes],
        verify: Callable[[bytes, bytes, bytes], bool],
        outbox: Outbox,
        awareness: Awareness,
        on_new_member: Callable[[bytes], None],
    ) -> None:
        self._config = config
        self._node_id = node_id
        self._sign = sign
        self._verify = verify
        self._outbox = outbox
        self._awareness = awareness
        self._on_new_member = on_new_member
        self.local = Entry(self.signed_alive(name, address, incarnation, tags), now)
        self.members: dict[bytes, Entry] = {node_id: self.local}
        self.reachable = IndexedSet()
        # Set once we announced our leave: from then on we refute nothing.
        self.leaving = False

    def full_state(self) -> Updates:
        entries = self.members.values()
        return Updates(
            alive=tuple(entry.alive for entry in entries),
            left=tuple(entry.left for entry in entries if entry.left is not None),
            dead=tuple(
                Dead(entry.node_id, entry.incarnation, self._node_id)
                for entry in entries
                if entry.state == DEAD
            ),
            suspect=tuple(
                Suspect(entry.node_id, entry.incarnation, self._node_id)
                for entry in entries
                if entry.state == SUSPECT
            ),
        )

    def apply(self, updates: Updates, sender: bytes, now: float, from_push_pull: bool) -> None:
        # A member the batch calls dead or left, and that we do not know (reaped it, or never
        # met it), stays unknown: otherwise one member that reaps later than another would
        # bring the dead back as zombies, to be detected and reaped all over again.
        gone = {dead.node_id for dead in updates.dead} | {left.node_id for left in updates.left}
        for alive in updates.alive:
            if alive.node_id in gone and alive.node_id not in self.members:
                continue
            self.apply_alive(alive, sender, now)
        for left in updates.left:
            self.apply_left(left, sender, now)
        for dead in updates.dead:
            if from_push_pull:
                # memberlist: another's full state saying "dead" only makes us suspect, so
                # one stale view cannot kill members we still hear from.
                self.apply_suspect(Suspect(dead.node_id, dead.incarnation, sender), now)
            else:
                self.apply_dead(dead, now)
        for suspect in updates.suspect:
            self.apply_suspect(suspect, now)

    def apply_alive(self, alive: Alive, sender: bytes, now: float) -> None:
        if alive.node_id == self._node_id:
            if (
                not self.leaving
                and alive != self.local.alive
                and alive.incarnation >= self.local.incarnation
                and self._verified_alive(alive, sender)
            ):
                self.refute(alive.incarnation, now)  # a statement from our former life
            return
        entry = self.members.get(alive.node_id)
        if entry is not None and alive.incarnation <= entry.incarnation:
            return
        if entry is None and len(self.members) >= self._config.members_max:
            self._outbox.statistics["members_over_limit"] += 1
            return
        if not self._verified_alive(alive, sender):
            return
        if entry is None:
            entry = Entry(alive, now)
            self.members[alive.node_id] = entry
            self._on_new_member(alive.node_id)
        else:
            entry.alive = alive
            entry.incarnation = alive.incarnation
            entry.left = None
            if entry.state != ALIVE:
                self._outbox.statistics["revivals"] += 1
            entry.set_state(ALIVE, now)
            self._outbox.timers.cancel(("suspicion", entry.node_id))
            self._outbox.timers.cancel(("reap", entry.node_id))
        self.reachable.add(entry.node_id)
        self._outbox.broadcasts.push(alive)
        self._outbox.changed(entry)

    def apply_left(self, left: Left, sender: bytes, now: float) -> None:
        if left.node_id == self._node_id:
            if (
                not self.leaving
                and left.incarnation >= self.local.incarnation
                and self._verified_left(left, sender)
            ):
                self.refute(left.incarnation, now)
            return
        entry = self.members.get(left.node_id)
        if entry is None or entry.state == LEFT or left.incarnation < entry.incarnation:
            return
        if not self._verified_left(left, sender):
            return
        entry.incarnation = left.incarnation
        entry.left = left
        self.gone(entry, LEFT, now)
        self._outbox.broadcasts.push(left)

    def apply_dead(self, dead: Dead, now: float) -> None:
        if dead.node_id == self._node_id:
            if not self.leaving and dead.incarnation >= self.local.incarnation:
                self.refute(dead.incarnation, now)
            return
        entry = self.members.get(dead.node_id)
        if entry is None or entry.state in (DEAD, LEFT) or dead.incarnation < entry.incarnation:
            return
        entry.incarnation = dead.incarnation
        self._outbox.statistics["deaths"] += 1
        self.gone(entry, DEAD, now)
        self._outbox.broadcasts.push(dead)

    def apply_suspect(self, suspect: Suspect, now: float) -> None:
        if suspect.node_id == self._node_id:
            if not self.leaving and suspect.incarnation >= self.local.incarnation:
                self.refute(suspect.incarnation, now)
            return
        entry = self.members.get(suspect.node_id)
        if entry is None or suspect.incarnation < entry.incarnation:
            return
        if entry.state == SUSPECT and entry.suspicion is not None:
            if suspect.incarnation == entry.incarnation and entry.suspicion.confirm(
                suspect.reporter
            ):
                # Lifeguard: a new confirmation shortens the timeout; pass it on so that
                # others' timers shrink too.
                self._outbox.timers.set(("suspicion", entry.node_id), entry.suspicion.deadline)
                self._outbox.broadcasts.push(suspect)
            return
        if entry.state != ALIVE:
            return
        members = len(self.reachable) + 1
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

    def suspicion_timeout(self, node_id: bytes, now: float) -> None:
        entry = self.members.get(node_id)
        if entry is not None and entry.state == SUSPECT:
            self.apply_dead(Dead(node_id, entry.incarnation, self._node_id), now)

    def gone(self, entry: Entry, state: str, now: float) -> None:
        entry.set_state(state, now)
        self.reachable.discard(entry.node_id)
        self._outbox.timers.cancel(("suspicion", entry.node_id))
        self._outbox.timers.set(("reap", entry.node_id), now + self._config.reap_after_s)
        self._outbox.changed(entry)

    def reap(self, node_id: bytes, now: float) -> None:
        entry = self.members.get(node_id)
        if entry is not None and entry.state in (DEAD, LEFT):
            del self.members[node_id]
            self._outbox.statistics["reaped"] += 1

    def refute(self, accused_incarnation: int, now: float) -> None:
        self._outbox.statistics["refutations"] += 1
        # Lifeguard: having to refute hints that we are slow to answer.
        self._awareness.apply(1)
        incarnation = max(self.local.incarnation, accused_incarnation) + 1
        alive = self.local.alive
        self.set_local_alive(alive.name, (alive.host, alive.port), incarnation, alive.tags, now)

    def set_local_alive(
        self, name: str, address: Address, incarnation: int, tags: Tags, now: float
    ) -> None:
        alive = self.signed_alive(name, address, incarnation, tags)
        self.local.alive = alive
        self.local.incarnation = incarnation
        self._outbox.broadcasts.push(alive)
        self._outbox.changed(self.local)

    def signed_alive(self, name: str, address: Address, incarnation: int, tags: Tags) -> Alive:
        host, port = address
        signed = alive_signed_bytes(self._node_id, name, host, port, incarnation, tags)
        return Alive(self._node_id, name, host, port, incarnation, tags, self._sign(signed))

    def _verified_alive(self, alive: Alive, sender: bytes) -> bool:
        signed = alive_signed_bytes(
            alive.node_id, alive.name, alive.host, alive.port, alive.incarnation, alive.tags
        )
        if self._verify(alive.node_id, signed, alive.signature):
            return True
        self._outbox.refuse(sender, "an alive statement with a bad signature")
        return False

    def _verified_left(self, left: Left, sender: bytes) -> bool:
        signed = left_signed_bytes(left.node_id, left.incarnation)
        if self._verify(left.node_id, signed, left.signature):
            return True
        self._outbox.refuse(sender, "a left statement with a bad signature")
        return False
