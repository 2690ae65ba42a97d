"""Carrying out the core's `Disconnect`: every connection with that peer, both directions,
and a record of each cut for `status`.

Rules:
1. A `Disconnect` closes our outbound link to its address, every other outbound link whose
   handshake proved the peer's node id, and every inbound connection that proved that id
   (a link that sends over an inbound connection, links.py rule 7, is both: that
   connection counts once).
   A misbehaving peer is no longer heard at once, whichever side opened the connection:
   not even what it sent right after the misbehaviour and is already buffered here (the
   receive loops stop once cancelled, runtime/agent.py `_serve_peer` and runtime/links.py).
2. A cut is not a ban: the peer may dial again (and we may, when the core sends to it),
   and what it sends then is judged afresh.
3. The newest `RECENT_DISCONNECTS_MAX` cuts are kept, with reason, wall time and how many
   connections each closed, for the operator's `status`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import trio

from ..core.events import Address, Disconnect
from .links import Links
from .transport import PeerConnection

__all__ = ["RECENT_DISCONNECTS_MAX", "CutRecord", "Disconnects"]

logger = logging.getLogger("gossipnode.peers")

# Cuts kept for `status`: enough to see a pattern, bounded against a peer that keeps
# coming back to misbehave.
RECENT_DISCONNECTS_MAX = 32


@dataclass(frozen=True, slots=True)
class CutRecord:
    peer: bytes | None
    address: Address | None
    reason: str
    wall_ms: int  # when, on the wall clock (for people)
    at: float  # when, on the agent's monotonic clock (for ages)
    closed: int  # connections closed: outbound links and inbound connections


class Disconnects:
    """The agent's inbound connections by proven peer id, and the cuts made so far."""

    def __init__(self, links: Links, clock: Callable[[], float],
                 wall_ms: Callable[[], int]) -> None:
        self._links = links
        self._clock = clock
        self._wall_ms = wall_ms
        self._inbound: dict[bytes, dict[PeerConnection, trio.CancelScope]] = {}
        self.recent: collections.deque[CutRecord] = collections.deque(
            maxlen=RECENT_DISCONNECTS_MAX
        )

    @contextlib.contextmanager
    def inbound(self, connection: PeerConnection) -> Iterator[trio.CancelScope]:
        """Serve an inbound connection inside this block; a cut of its peer cancels the
        block (the listener then closes the connection). The block must stop delivering
        once the scope's `cancel_called` is set: a message already buffered is returned
        without a checkpoint, so the cancellation alone would not stop it."""
        scope = trio.CancelScope()
        serving = self._inbound.setdefault(connection.peer_id, {})
        serving[connection] = scope
        try:
            with scope:
                yield scope
        finally:
            del serving[connection]
            if not serving:
                self._inbound.pop(connection.peer_id, None)

    def inbound_from(self, peer: bytes) -> list[PeerConnection]:
        return list(self._inbound.get(peer, ()))

    def cut(self, event: Disconnect) -> CutRecord:
        """Close every connection with the event's peer (rule 1) and record it (rule 3)."""
        addresses: set[Address] = set()
        if event.to is not None:
            addresses.add((event.to[0], event.to[1]))
        if event.peer is not None:
            addresses.update(a for a, peer in self._links.connected() if peer == event.peer)
            self._links.withdraw_peer(event.peer)  # no link may take them up meanwhile
        # Counted once each: a link may send over an inbound connection (links.py rule 7).
        closed: set[object] = set()
        for address in sorted(addresses):
            link = self._links.close(address)
            if link is not None:
                closed.add(link.connection if link.connection is not None else link)
        inbound = self._inbound.get(event.peer, {}) if event.peer is not None else {}
        for connection, scope in inbound.items():
            scope.cancel()
            closed.add(connection)
        record = CutRecord(event.peer, event.to, event.reason, self._wall_ms(), self._clock(),
                           len(closed))
        self.recent.append(record)
        return record
