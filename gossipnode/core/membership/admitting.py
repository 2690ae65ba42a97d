"""Membership follows admission: when the admission predicate's answers may have changed
(a new cluster policy), the member table is brought in line with it.

Rules:
1. Each live member the predicate now refuses leaves the table for the pending set
   (pending.py), where it costs no more than any pending member, and is reported with a
   MemberChanged whose state is "pending". It holds nothing and is sent nothing.
2. Each pending member the predicate now admits that spoke to us itself (one set aside, or
   one that contacted us directly) enters the table at once, so that an administrator's
   grants, written one at a time, never leave a member out for long. One heard of only
   second-hand waits for its confirmation ping as before.
3. Dead and left members are left to be reaped.
"""

from __future__ import annotations

from collections.abc import Callable

from .members import ALIVE, PENDING, SUSPECT
from .outbox import Outbox
from .state import MemberTable

__all__ = ["readmit"]


def readmit(table: MemberTable, admitted: Callable[[bytes], bool], outbox: Outbox,
            now: float) -> list[bytes]:
    """Apply rules 1 and 2; return the node ids set aside."""
    for node_id, waiting in list(table.pending.entries.items()):
        if waiting.source == node_id:
            table.arrivals.heard_from(node_id, now)  # enters if admitted now (rule 2)
    refused = [
        node_id for node_id, entry in table.members.items()
        if entry is not table.local and entry.state in (ALIVE, SUSPECT) and not admitted(node_id)
    ]
    for node_id in refused:
        entry = table.remove(node_id)
        outbox.timers.cancel(("suspicion", node_id))
        table.pending.offer(entry.alive, node_id, now)
        entry.set_state(PENDING, now)
        outbox.changed(entry)
        outbox.statistics["members_set_aside"] += 1
    return refused
