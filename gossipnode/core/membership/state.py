"""What one member believes about every member, and the SWIM rules that change it.

Rules (precedence per member, by incarnation; SWIM as memberlist implements it):
1. `alive` (signed by the subject) replaces anything of a lower incarnation. It is how a
   member joins, changes its tags or address, refutes a suspicion, and comes back.
2. `suspect` replaces `alive` of the same or a lower incarnation and starts a Lifeguard
   suspicion timer (suspicion.py). A suspect of that incarnation confirms it only
   first-hand: its reporter is the channel's sender (ourselves for our own failed probe),
   a member we hold alive or suspect, once. A named reporter is the sender's unsigned
   word: one liar could name twenty, real or invented, in one message and take every
   timer to its minimum at once; now one member confirms at most once: itself. Relays
   still start suspicions (keeping the reporter, who started it there and cannot confirm:
   a false name only delays), but we pass on only our own confirmations, first-hand to
   whoever we tell; a dead claim is its sender's own word (rule 10), so the first timers
   to run out confirm the rest (it is sent twice as often: broadcast.py rule 2).
   (memberlist counts relayed reporters. Not enough: counting only reporters we hold
   live, since a liar names real members; one named reporter per sender, since honest
   relays pass each of a liar's names on. Too dear: signed suspects, a new wire field and
   a signature per confirmation.)
3. `dead` replaces `alive` or `suspect` of the same or a lower incarnation (only our own
   suspicion timer declares it: rule 10); `left` (signed by the subject) replaces anything
   but `left` of the same or a lower incarnation.
4. Claims are bounded by what the subject signed: a suspect or dead claim above the
   incarnation of the subject's latest signed alive statement we hold is a lie (nobody can
   have seen the subject at an incarnation it never signed), is counted
   (`claims_over_signed`) and changes nothing. So the subject can always refute: its next
   alive statement is above any claim we accepted. (Margin: none. A claim that overtakes
   the subject's own alive statement in flight is dropped; the next probe repeats it.)
5. Statements about ourselves are never applied: one from our former life, or a claim at
   our incarnation, makes us refute with a higher incarnation (local_statements.py).
6. A new member enters the table only once it has spoken to us itself (the channel proved
   its id) and the admission predicate admits it; until then it waits in the bounded
   pending set (pending.py). A new member whose name a live member holds is refused, once
   per member, with a PeerRefused that says so (names.py). A member we suspect or
   hold dead that speaks to us is told so, and refutes at once.
7. A signature is checked only when a statement would change something, and a verified one
   is cached (verified.py): replays cost a hash. A bad signature is refused (PeerRefused).
8. Every accepted change is queued for broadcast and reported (MemberChanged).
9. Force-leave bounds (forced.py, from administrator-signed records the node
   verified): a member forced out at incarnation N is marked left and forgotten at once,
   and no alive statement of it at N or below is taken again, whoever relays it
   (`force_left_refused`), so gossip cannot bring it back. Only the subject itself comes
   back, with a higher incarnation: a restart, or, if it is in fact running, a refutation:
   a subject that speaks to us from below its bound is sent a death notice at its
   incarnation (once per probe interval), and a member that learns of a bound over itself
   refutes at once (as rule 5), as serf's force-leave lets a live node rejoin.
10. Another member's word that a member is dead only makes us suspect it, in gossip as in a
   full state (memberlist takes a dead claim in gossip at once): the claim starts or
   confirms our own suspicion, as the channel's sender's own word (rule 2), whatever
   reporter it names, and only our own suspicion timer declares the member dead. A dead
   member leaves placement (which member holds which mailbox, core/scopes.py): were one
   claim enough, a single lying member could take a live co-owner's place and be sent its
   mailboxes before the subject refutes (tests/core/test_containment_liar.py). A truly dead
   member is suspected by everyone within gossip rounds of its prober, so each timer runs
   out about when the prober's does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ...config import MembershipConfig
from ..events import Address
from .arrivals import Arrivals
from .awareness import Awareness
from .claims import Claims
from .forced import ForceLeft
from .local_statements import LocalStatements
from .members import ALIVE, DEAD, LEFT, SUSPECT, Entry
from .messages import Alive, Dead, Left, Suspect, Tags, Updates
from .names import NameGuard
from .outbox import Outbox
from .pending import PendingMembers
from .timers import IndexedSet
from .verified import Signatures

__all__ = ["LIVE_STATES", "MemberTable"]

LIVE_STATES = (ALIVE, SUSPECT)


class MemberTable:
    """The members we know, ourselves included, the pending ones, and the rules above:
    alive and left statements here; new members in `arrivals` (arrivals.py), suspect and
    dead claims in `claims` (claims.py), signatures in `signatures` (verified.py), our own
    statements in `own` (local_statements.py).

    `reachable` holds the other members that are alive or suspect: the ones to probe and
    gossip to. `on_new_member` and `on_pending`: see arrivals.py.
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
        admitted: Callable[[bytes], bool],
        outbox: Outbox,
        awareness: Awareness,
        on_new_member: Callable[[bytes], None],
        on_pending: Callable[[bytes, float], None],
    ) -> None:
        self._config = config
        self._node_id = node_id
        self._outbox = outbox
        # Every statement in a full push-pull twice over, so that periodic syncs hit it.
        self.signatures = Signatures(node_id, sign, verify, 2 * config.members_max, outbox)
        self.local = Entry(self.signatures.signed_alive(name, address, incarnation, tags), now)
        self.members: dict[bytes, Entry] = {node_id: self.local}
        # Our own statements, and what statements about us make us do (rule 5).
        self.own = LocalStatements(self, outbox, awareness)
        # Name -> the members that bear it (any state), so that a name check looks at
        # its bearers only, not at every member (rule 6).
        self._named: dict[str, dict[bytes, None]] = {name: {node_id: None}}
        self.pending = PendingMembers(config.pending_members_max, config.pending_expiry_s)
        self.reachable = IndexedSet()
        # Members we hold dead, by node id, in the order they died (the time they died):
        # the recently dead are found from the end, without a scan of every member.
        self.dead: dict[bytes, float] = {}
        self._names = NameGuard(outbox)
        # Set once we announced our leave: from then on we refute nothing.
        self.leaving = False
        # Members forced out by an administrator (rule 9).
        self.forced = ForceLeft(config, node_id, self, outbox)
        # New members (rule 6), and suspect and dead claims (rules 2 to 5).
        self.arrivals = Arrivals(config, self, outbox, admitted, on_new_member, on_pending)
        self.claims = Claims(config, node_id, self, outbox)

    def full_state(self, entries: Iterable[Entry] | None = None) -> Updates:
        """What we hold of `entries` (default: every member) as statements: each one's alive
        statement, and its left statement or our dead or suspect claim."""
        chosen = list(self.members.values() if entries is None else entries)
        return Updates(
            alive=tuple(entry.alive for entry in chosen),
            left=tuple(entry.left for entry in chosen if entry.left is not None),
            dead=tuple(
                Dead(entry.node_id, entry.incarnation, self._node_id)
                for entry in chosen
                if entry.state == DEAD
            ),
            suspect=tuple(
                Suspect(entry.node_id, entry.incarnation, self._node_id)
                for entry in chosen
                if entry.state == SUSPECT
            ),
        )

    def apply(self, updates: Updates, sender: bytes, now: float, from_push_pull: bool) -> None:
        # A member the batch calls dead or left, and that we do not know (reaped it, or never
        # met it), stays unknown: otherwise one member that reaps later than another would
        # bring the dead back as zombies, to be detected and reaped all over again.
        gone = {dead.node_id for dead in updates.dead} | {left.node_id for left in updates.left}
        # One message offers at most a pending set's worth of unknown members: more would
        # only evict each other, after a signature check each.
        unknown_max = self.pending.capacity
        for alive in updates.alive:
            entry = self.members.get(alive.node_id)
            if entry is None:
                if alive.node_id in gone or unknown_max <= 0:
                    continue
                unknown_max -= 1
            elif (alive.incarnation <= entry.incarnation and alive.node_id != self._node_id
                  and alive.node_id not in self.forced.bounds):
                continue  # apply_alive would do nothing with it (most gossip repeats)
            # A member named in a full state we asked for is pinged at once; one named in
            # gossip is most likely announcing itself to us right now (confirming.py rule 1).
            self.apply_alive(alive, sender, now, confirm_at_once=from_push_pull)
        for left in updates.left:
            self.apply_left(left, sender, now)
        for dead in updates.dead:
            # Rule 10: another member's word that a member is dead only makes us suspect it
            # (the channel's sender's own word), in gossip as in a full state
            # (memberlist's rule for a full state, so one stale view cannot kill either).
            self.claims.apply_claim(dead.node_id, dead.incarnation, sender, sender, now)
        for suspect in updates.suspect:
            self.claims.apply_suspect(suspect, sender, now)

    def apply_alive(self, alive: Alive, sender: bytes, now: float, *,
                    confirm_at_once: bool = True) -> None:
        if alive.node_id == self._node_id:
            self.own.alive_heard(alive, sender, now)  # rule 5
            return
        if self.forced.refuses(alive, sender, now):  # rule 9
            return
        entry = self.members.get(alive.node_id)
        if entry is None:
            self.arrivals.offer(alive, sender, now, confirm_at_once=confirm_at_once)
            return
        if alive.incarnation <= entry.incarnation or not self.signatures.alive_ok(alive, sender):
            return
        if alive.name != entry.alive.name:
            if self.name_taken(alive, sender):
                return
            self._unname(entry)
            self._named.setdefault(alive.name, {})[entry.node_id] = None
        entry.alive = alive
        entry.incarnation = alive.incarnation
        entry.left = None
        # A new incarnation may be a restart, which forgot the roots we advertised to it.
        entry.roots_sent = None
        if entry.state != ALIVE:
            self._outbox.statistics["revivals"] += 1
        entry.set_state(ALIVE, now)
        self.dead.pop(entry.node_id, None)
        self._outbox.timers.cancel(("suspicion", entry.node_id))
        self._outbox.timers.cancel(("reap", entry.node_id))
        self.reachable.add(entry.node_id)
        self._outbox.broadcasts.push(alive)
        self._outbox.changed(entry)

    def insert(self, alive: Alive, now: float) -> Entry:
        """Put a new member into the table and its name index (the other indexes and its
        announcement are the caller's)."""
        entry = Entry(alive, now)
        self.members[alive.node_id] = entry
        self._named.setdefault(alive.name, {})[alive.node_id] = None
        return entry

    def name_taken(self, alive: Alive, sender: bytes) -> bool:
        bearers = [self.members[n] for n in self._named.get(alive.name, ())]
        return self._names.taken(alive, bearers, self.local, sender)

    def remove(self, node_id: bytes) -> Entry:
        """Take a member out of the table and every index of it (its name, the reachable
        set, the deaths); its timers are the caller's."""
        entry = self.members.pop(node_id)
        self._unname(entry)
        self.reachable.discard(node_id)
        self.dead.pop(node_id, None)
        return entry

    def _unname(self, entry: Entry) -> None:
        bearers = self._named.get(entry.alive.name)
        if bearers is not None:
            bearers.pop(entry.node_id, None)
            if not bearers:
                del self._named[entry.alive.name]

    def apply_left(self, left: Left, sender: bytes, now: float) -> None:
        if left.node_id == self._node_id:
            self.own.left_heard(left, sender, now)  # rule 5
            return
        if left.node_id in self.pending:
            if self.signatures.left_ok(left, sender):
                self.pending.pop(left.node_id)
            return
        entry = self.members.get(left.node_id)
        if entry is None or entry.state == LEFT or left.incarnation < entry.incarnation:
            return
        if not self.signatures.left_ok(left, sender):
            return
        entry.incarnation = left.incarnation
        entry.left = left
        self.gone(entry, LEFT, now)
        self._outbox.broadcasts.push(left)

    def gone(self, entry: Entry, state: str, now: float) -> None:
        was_dead = entry.state == DEAD
        entry.set_state(state, now)
        if state != DEAD or not was_dead:
            self.dead.pop(entry.node_id, None)
        if state == DEAD and not was_dead:
            self.dead[entry.node_id] = now
        self.reachable.discard(entry.node_id)
        self._outbox.timers.cancel(("suspicion", entry.node_id))
        self._outbox.timers.set(("reap", entry.node_id), now + self._config.reap_after_s)
        self._outbox.changed(entry)

    def reap(self, node_id: bytes, now: float) -> None:
        entry = self.members.get(node_id)
        if entry is not None and entry.state in (DEAD, LEFT):
            self.remove(node_id)
            self._outbox.statistics["reaped"] += 1
