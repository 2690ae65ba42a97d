"""New members: confirmed before they count (state.py rule 6).

A member we do not know enters the table only once it has spoken to us itself (the channel
proved its id) and the admission predicate admits it; until then it waits in the bounded
pending set (pending.py), and is pinged to confirm it (probing.py). A member we suspect or
hold dead that speaks to us is told so, and refutes at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...config import MembershipConfig
from .members import DEAD, SUSPECT
from .messages import Alive, Dead, Gossip, Suspect, Updates
from .outbox import Outbox

if TYPE_CHECKING:
    from .state import MemberTable

__all__ = ["Arrivals"]


class Arrivals:
    """`on_new_member` is told of each member the first time we accept it, `on_pending` of
    each member that starts waiting to be confirmed and is to be pinged at once."""

    def __init__(
        self,
        config: MembershipConfig,
        table: MemberTable,
        outbox: Outbox,
        admitted: Callable[[bytes], bool],
        on_new_member: Callable[[bytes], None],
        on_pending: Callable[[bytes, float], None],
    ) -> None:
        self._config = config
        self._table = table
        self._outbox = outbox
        self._admitted = admitted
        self._on_new_member = on_new_member
        self._on_pending = on_pending

    def heard_from(self, sender: bytes, now: float) -> None:
        """`sender` spoke to us over a channel that proved its id: confirm it if pending; if
        we suspect it or hold it dead, tell it so (at most once per probe interval), so that
        it refutes now rather than when the statement happens to reach it."""
        table = self._table
        entry = table.members.get(sender)
        if entry is not None and entry.state in (SUSPECT, DEAD) and not table.leaving:
            interval_s = self._config.probe_interval_s
            if entry.notified_at is None or entry.notified_at + interval_s <= now:
                entry.notified_at = now
                kind = Suspect if entry.state == SUSPECT else Dead
                notice = kind(sender, entry.incarnation, table.local.node_id)
                field = "suspect" if kind is Suspect else "dead"
                self._outbox.send(entry.address, Gossip(Updates(**{field: (notice,)})), sender)
            return
        waiting = table.pending.get(sender)
        if waiting is None or not self._admitted(sender):
            return
        table.pending.pop(sender)
        self._outbox.statistics["pending_confirmed"] += 1
        self._add(waiting.alive, sender, now)

    def offer(self, alive: Alive, sender: bytes, now: float, *,
              confirm_at_once: bool = True) -> None:
        """A member we do not know: add it if it speaks for itself, else hold it pending and
        have it pinged (at once, or at the next probe tick: confirming.py rule 1)."""
        table = self._table
        waiting = table.pending.get(alive.node_id)
        if waiting is not None and alive.incarnation <= waiting.alive.incarnation:
            if sender == alive.node_id:
                self.heard_from(sender, now)
            return
        if not table.signatures.alive_ok(alive, sender):
            return
        if sender == alive.node_id and self._admitted(sender):
            table.pending.pop(sender)
            self._add(alive, sender, now)
            return
        new, evicted = table.pending.offer(alive, sender, now)
        if evicted is not None:
            self._outbox.statistics["pending_evicted"] += 1
        if new and self._admitted(alive.node_id) and confirm_at_once:
            self._on_pending(alive.node_id, now)

    def _add(self, alive: Alive, sender: bytes, now: float) -> None:
        table = self._table
        if len(table.members) >= self._config.members_max:
            self._outbox.statistics["members_over_limit"] += 1
            return
        if table.name_taken(alive, sender):
            return
        entry = table.insert(alive, now)
        self._on_new_member(alive.node_id)
        table.reachable.add(entry.node_id)
        self._outbox.broadcasts.push(alive)
        self._outbox.changed(entry)
