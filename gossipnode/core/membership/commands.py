"""What the node tells its `Membership` to do besides feeding it messages and timers: join,
leave, force a member out, advertise new tags or roots, take the admission predicate's new
answers. `MembershipCommands` is a mixin of `Membership` (swim.py), over the parts it builds.

Rules:
1. A member that left stays left: `join` and `set_tags` raise LocalProtocolError once it
   has, and a second `leave` does nothing.
2. Leave signs `left`, pushes it out, and stops probing, push-pulls and reconnects; gossip
   rounds, the first at once, go on only while statements wait to be sent.
   `next_deadline()` becomes None once the left statement has been sent its full
   retransmit count, and the shell may then exit.
3. Force-leave in an open cluster (`force_leave`) marks a dead member left and forgets it
   at once, in this member's view only: a left statement must be signed by the member
   itself, so nothing is broadcast. Under administrators a signed record reaches every
   member and sets the bounds of `set_force_left` (state.py rule 9).
4. New tags are a new signed alive statement at a higher incarnation, spread at once
   rather than at the next gossip round (up to an interval away); the same tags again
   change nothing.
5. This node's digest roots, who may hear which of them (roots.py rule 5), and asking a
   live member for its own (roots.py rule 7) are roots.py's; `ask_roots` sends nothing to a
   member not alive in the table, nor after we left.
6. When the admission predicate's answers may have changed, `admission_changed` sets aside
   the members it now refuses into the pending set (admitting.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ...config import MembershipConfig
from ..errors import LocalProtocolError
from ..events import Address
from .admitting import readmit
from .checks import check_tags, tags_tuple
from .dissemination import GOSSIP, Disseminator
from .members import ALIVE, DEAD, LEFT
from .outbox import Outbox
from .probing import Prober
from .roots import Audience, RootAdverts
from .state import MemberTable
from .sync import Sync
from .timers import Timers

__all__ = ["MembershipCommands"]


class MembershipCommands:
    """The commands of `Membership` (swim.py), over the parts it builds."""

    _config: MembershipConfig
    _node_id: bytes
    _admitted: Callable[[bytes], bool]
    _outbox: Outbox
    _timers: Timers
    _table: MemberTable
    _adverts: RootAdverts
    _dissemination: Disseminator
    _prober: Prober
    _sync: Sync
    left: bool

    def join(self, seeds: Sequence[Address], now: float) -> None:
        """Swap full state with every seed (our own address is skipped) and announce
        ourselves; retried each `join_retry_interval_s` while we know no other member."""
        if self.left:
            raise LocalProtocolError("a member that left cannot join again; restart it")
        self._sync.join(seeds, now)

    def leave(self, now: float) -> None:
        """Announce a graceful leave (signed) and stop probing. The shell keeps running the
        core (it still answers pings) until `next_deadline()` is None, which it becomes once
        the left statement has been sent its full retransmit count, then exits."""
        if self.left:
            return
        self.left = self._dissemination.left = True
        self._table.leaving = True
        left = self._table.signatures.signed_left(self._table.local.incarnation)
        self._table.local.left = left
        self._table.local.set_state(LEFT, now)
        self._outbox.changed(self._table.local)
        self._outbox.broadcasts.push(left)
        self._prober.stop()
        self._sync.stop()
        self._timers.cancel(GOSSIP)
        self._dissemination.tick(now)

    def force_leave(self, node_id: bytes, now: float) -> bool:
        """The operator says a dead member is gone for good: mark it left and reap it now,
        in this member's view (rule 3). Returns False, changing nothing, unless it is
        dead."""
        entry = self._table.members.get(node_id)
        if entry is None or entry.state != DEAD:
            return False
        self._table.gone(entry, LEFT, now)
        self._timers.cancel(("reap", node_id))
        self._table.reap(node_id, now)
        return True

    def set_force_left(self, bounds: Mapping[bytes, int], now: float) -> list[bytes]:
        """Members forced out by an administrator: node id -> the incarnation at or below
        which each is gone (state.py rule 9). Returns the members removed now."""
        return self._table.forced.set(bounds, now)

    def set_roots(self, roots: dict[str, bytes], now: float) -> None:
        """This node's digest roots now (dataset -> root); advertised as roots.py says."""
        self._adverts.set_local(roots, now)

    def set_roots_audience(self, audience: Audience) -> None:
        """Who may hear which of this node's roots (roots.py rule 5); everyone by default."""
        self._adverts.audience = audience

    def ask_roots(self, node_id: bytes, now: float) -> bool:
        """Ask a live member for its current roots (roots.py rule 7): a ping carrying ours
        now, answered by an ack carrying its own. False, sending nothing, when it is not
        alive in the table or may hear none of our roots (it would not answer with its
        own)."""
        entry = self._table.members.get(node_id)
        if self.left or entry is None or entry.state != ALIVE or node_id == self._node_id:
            return False
        self._adverts.ask(entry)
        return self._prober.ask_roots(entry, now)

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        """Advertise new tags: a new signed alive statement at a higher incarnation."""
        if self.left:
            raise LocalProtocolError("a member that left cannot change its tags")
        pairs = tags_tuple(tags)
        check_tags(pairs, self._config.tags_bytes_max, LocalProtocolError)
        if pairs != self._table.local.tags:
            alive = self._table.local.alive
            self._table.own.set_local_alive(
                alive.name, (alive.host, alive.port), self._table.local.incarnation + 1, pairs, now
            )
            # Spread it now rather than at the next gossip round (up to an interval away).
            self._dissemination.tick(now)

    def admission_changed(self, now: float) -> list[bytes]:
        """The admission predicate's answers may have changed: see admitting.py. Returns
        the members set aside."""
        return readmit(self._table, self._admitted, self._outbox, now)
