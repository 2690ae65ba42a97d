"""Names are unique among live members: a member that claims a name a live member holds is
refused, and each such member is reported once (one clear line in each log), not once per
statement that repeats the claim.

The first holder keeps the name; a member that is dead or left gives it up, so a node
restarted with a new identity under its old name is accepted once the old one is gone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from .members import ALIVE, SUSPECT, Entry
from .messages import Alive
from .outbox import Outbox

__all__ = ["NameGuard"]

# Refused members remembered, so that each is reported once; the oldest are forgotten
# first (forgetting one only repeats its line).
NAME_REFUSALS_MAX = 256


class NameGuard:
    __slots__ = ("_outbox", "_reported")

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._reported: OrderedDict[bytes, None] = OrderedDict()

    def taken(self, alive: Alive, members: Iterable[Entry], local: Entry, sender: bytes) -> bool:
        """True if a live member other than the subject holds the name `alive` claims;
        reported (PeerRefused to `sender`) once per subject. `members` may be just those
        that bear the name (the member table indexes them)."""
        holder = next(
            (
                entry
                for entry in members
                if entry.alive.name == alive.name
                and entry.node_id != alive.node_id
                and entry.state in (ALIVE, SUSPECT)
            ),
            None,
        )
        if holder is None:
            return False
        self._outbox.statistics["names_refused"] += 1
        if alive.node_id in self._reported:
            return True
        self._reported[alive.node_id] = None
        if len(self._reported) > NAME_REFUSALS_MAX:
            self._reported.popitem(last=False)
        whose = "ours" if holder is local else f"held by live member {holder.node_id.hex()[:16]}"
        self._outbox.refuse(
            sender,
            f"member {alive.node_id.hex()[:16]} at {alive.host}:{alive.port} refused: "
            f"its name {alive.name!r} is {whose} (names are unique; give it another)",
        )
        return True
