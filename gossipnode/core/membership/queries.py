"""What a `Membership` answers about the cluster: member snapshots, counters, the next
deadline, digest roots, and the events produced since the last call. Read only, except
that `events` drains what it returns.
"""

from __future__ import annotations

from collections import Counter

from ...config import MembershipConfig
from ..events import Address, Event
from .awareness import Awareness
from .members import ALIVE, Member
from .messages import Alive
from .outbox import Outbox
from .probing import Prober
from .roots import AdvertisedRoots, RootAdverts, stale_after_s
from .state import MemberTable

__all__ = ["MembershipQueries"]


class MembershipQueries:
    """The queries of `Membership` (swim.py), over the parts it builds."""

    _config: MembershipConfig
    _node_id: bytes
    _outbox: Outbox
    _awareness: Awareness
    _table: MemberTable
    _prober: Prober
    _adverts: RootAdverts

    @property
    def local_member(self) -> Member:
        return self._table.local.snapshot()

    def local_statement(self) -> tuple[Alive, str]:
        """This node's latest alive statement and its state, in O(1) (no snapshot): what
        `local_member` is made of, the same objects until either changes."""
        local = self._table.local
        return local.alive, local.state

    def address_of(self, node_id: bytes) -> Address | None:
        """`member(node_id).address`, without a snapshot: None for a non-member."""
        entry = self._table.members.get(node_id)
        return None if entry is None else entry.address

    def member(self, node_id: bytes) -> Member | None:
        entry = self._table.members.get(node_id)
        return None if entry is None else entry.snapshot()

    def members(self) -> list[Member]:
        """Every member we know, ourselves included, dead and left ones until reaped
        (pending members are not members yet: see `pending_members`)."""
        return [entry.snapshot() for entry in self._table.members.values()]

    def alive_members(self) -> list[Member]:
        return [entry.snapshot() for entry in self._table.members.values() if entry.state == ALIVE]

    def pending_members(self) -> list[tuple[bytes, str, Address]]:
        """(node id, name, address) of the members waiting to be confirmed or admitted."""
        return [
            (node_id, waiting.alive.name, (waiting.alive.host, waiting.alive.port))
            for node_id, waiting in self._table.pending.entries.items()
        ]

    def claimed_tags(self, node_id: bytes) -> dict[str, str] | None:
        """The tags a member in the table, or a pending one, signed in its latest alive
        statement; None for a node we know nothing of."""
        entry = self._table.members.get(node_id)
        if entry is not None:
            return dict(entry.alive.tags)
        waiting = self._table.pending.get(node_id)
        return None if waiting is None else dict(waiting.alive.tags)

    def states(self) -> dict[bytes, str]:
        """node id -> state, cheaply (no snapshots): for tests and simulations."""
        return {node_id: entry.state for node_id, entry in self._table.members.items()}

    def counts(self) -> Counter[str]:
        """How many members (ourselves included) are in each state."""
        return Counter(entry.state for entry in self._table.members.values())

    def statistics(self) -> dict[str, int]:
        """Counters: sent_<message>, received_<message>; suspicions (entered, ours or heard),
        suspicions_raised (started by our own failed probe), refutations, deaths, revivals,
        refused (statements with bad signatures), claims_over_signed, probes, reaped, ...;
        and gauges: awareness, broadcasts_queued, members_pending, relays_running,
        signature_checks."""
        return {
            **self._outbox.statistics,
            "awareness": self._awareness.score,
            "broadcasts_queued": len(self._outbox.broadcasts),
            "members_pending": len(self._table.pending),
            "relays_running": self._prober.relays.running,
            "signature_checks": self._table.signatures.checks,
        }

    def next_deadline(self) -> float | None:
        return self._outbox.timers.next()

    def local_roots(self) -> dict[str, tuple[bytes, float]]:
        """This node's advertised roots: dataset -> (root prefix, changed at)."""
        return self._adverts.local

    def advertised_roots(self) -> dict[bytes, AdvertisedRoots]:
        """Each other member's roots as it last advertised them (members that never did
        are absent); see roots.py."""
        every = ((node_id, self.advertised_roots_of(node_id)) for node_id in self._table.members)
        return {node_id: roots for node_id, roots in every if roots is not None}

    def advertised_roots_of(self, node_id: bytes) -> AdvertisedRoots | None:
        """One other member's roots as it last advertised them, in O(1), or None (never
        advertised, not a member, or this node)."""
        entry = self._table.members.get(node_id)
        if entry is None or entry.roots_heard_at is None or node_id == self._node_id:
            return None
        return AdvertisedRoots(dict(entry.roots), entry.roots_heard_at)

    def roots_heard_at(self, node_id: bytes) -> float | None:
        """When `node_id`'s own roots last arrived (our clock), or None: O(1)."""
        entry = self._table.members.get(node_id)
        return None if entry is None or node_id == self._node_id else entry.roots_heard_at


    def roots_stale_after_s(self) -> float:
        return stale_after_s(self._config, len(self._table.members))

    def events(self) -> list[Event]:
        """Drain the Sends and MemberChanged facts produced since the last call."""
        events, self._outbox.events = self._outbox.events, []
        return events
