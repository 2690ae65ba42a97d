"""Outbound links: one dialled, authenticated connection per peer address, fed by a bounded
queue.

Rules:
1. The core's `Send` events go into the link for their address without waiting
   (`enqueue`); a link whose queue is full is closed and its queue dropped: a slow or stuck
   peer never makes this node buffer without bound, and anti-entropy repairs it later.
2. A message meant for a known node id goes only over a connection whose handshake proved
   that id; if another node answers at that address, the message is dropped and logged.
3. A failed dial is remembered for `DIAL_BACKOFF_S`; sends to that address meanwhile are
   dropped instead of dialling again and again, unless the member there is seen alive
   again first (`reachable`): its return is what the core reacts to at once. A failed
   dial is logged once per run of failures to an address (the core keeps reaching dead
   members, about once a probe interval, so that a healed partition is noticed).
4. Messages that arrive on an outbound connection are fed to the core like any other.
5. Probes, acks, ping requests, nacks and gossip go first: a link has an urgent queue
   (bounded; the oldest is forgotten when full) and a bulk queue, and sends from the
   urgent one whenever it holds anything. At most `LINKS_MAX` links at once; a new one
   closes the least recently used.
6. The send loop takes everything queued at once and hands it to the connection, which
   bundles small messages into shared frames (wire/peer_frames.py): the messages one input
   of the core produced (a round's sessions, a probe and its gossip) cost one frame.
7. One connection per pair of nodes, carrying both directions: an inbound connection, once
   its handshake proved the peer's id, is offered to the links (`offered`), and a link to
   that peer sends over it instead of dialling one of its own (the agent's `_serve_peer`
   keeps receiving from it; the link only sends). So a pair pays one handshake, not two,
   and the answer to a probe goes back over the probe's connection. When both ends dial
   at once, a dial still in progress when the peer's connection is proven is cancelled,
   whichever end has the lower node id (the rest of its handshake is saved; its peer never
   completes it, so it keeps its own); when both are established, both keep the one the
   lower node id dialled: the higher end closes its own once the batch being written is
   out, its queue carried over, and sends over the peer's. Either way one connection
   serves the pair and none is left without one. A link that
   sends over an inbound connection switches to a newer one from the same peer (the peer
   dialled again: the old one is on its way out). Order per direction holds on each
   connection; only messages already in flight on a connection given up may be handled
   after the first ones on the connection kept.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
from collections.abc import Callable, Iterator

import trio

from ..config import NodeConfig, format_address
from ..core.events import Address
from ..core.membership import Ack, Gossip, Nack, Ping, PingRequest
from ..driving import DIAL_BACKOFF_S, LINK_QUEUE_MESSAGES_MAX
from ..identity import Identity
from .transport import ConnectionClosed, HandshakeFailed, PeerConnection, TransportStatus, connect

__all__ = ["Links"]

logger = logging.getLogger("gossipnode.peers")

# Membership messages waiting for one peer; past it the oldest is forgotten (SWIM
# tolerates a lost probe; a stale one is worthless anyway).
URGENT_QUEUE_MESSAGES_MAX = 64
# Probes, acks and gossip jump the queue: a probe must never wait behind bulk records, or a
# busy link looks like a dead member (push-pulls carry full state and wait like bulk).
URGENT_MESSAGES = (Ping, Ack, PingRequest, Nack, Gossip)
# Outbound links at once. Members' addresses come from the member table (up to
# membership.members_max), so the links are bounded on their own: a new one closes the
# link used least recently, keeping descriptors for the listener and the store.
LINKS_MAX = 256

Deliver = Callable[[bytes, object], None]
Lost = Callable[[Address], None]


class _Link:
    """One outbound link: its connection, once dialled or adopted, and two queues (rule 5)."""

    def __init__(self, address: Address, peer: bytes | None) -> None:
        self.address = address
        self.peer = peer
        self.urgent: collections.deque[tuple[bytes | None, object]] = collections.deque(
            maxlen=URGENT_QUEUE_MESSAGES_MAX
        )
        self.bulk: collections.deque[tuple[bytes | None, object]] = collections.deque()
        self.wake = trio.Event()
        self.cancel_scope = trio.CancelScope()
        self.connection: PeerConnection | None = None
        # True while `connection` is (or is being) dialled by us; False once it is an
        # inbound connection the link sends over (rule 7).
        self.dialled = True
        # An inbound connection to carry on over, asked for by `Links.offer` (rule 7).
        self.switch_to: PeerConnection | None = None
        # Cancels the dial in progress when a switch makes it pointless.
        self.dial_scope = trio.CancelScope()
        self.last_used = trio.current_time()

    def peer_id(self) -> bytes | None:
        """The node id at the other end: proven once connected, else the one expected."""
        return self.connection.peer_id if self.connection is not None else self.peer

    def put(self, peer: bytes | None, message: object) -> bool:
        """Queue a message; False if the bulk queue is full (the link must go)."""
        self.last_used = trio.current_time()
        if isinstance(message, URGENT_MESSAGES):
            self.urgent.append((peer, message))  # a full queue forgets its oldest probe
        elif len(self.bulk) >= LINK_QUEUE_MESSAGES_MAX:
            return False
        else:
            self.bulk.append((peer, message))
        self.wake.set()
        return True

    def switch(self, connection: PeerConnection) -> None:
        """Carry on over `connection` (rule 7): at once while dialling, else after the
        batch being written."""
        self.switch_to = connection
        if self.connection is None:
            self.dial_scope.cancel()
        self.wake.set()

    async def get(self) -> list[tuple[bytes | None, object]]:
        """What is queued (waiting for the first): every urgent message, then bulk ones up
        to and including the first that carries records (rule 6), so that a probe queued
        meanwhile waits for at most one record batch. Nothing once a switch is asked for:
        the rest goes over the new connection."""
        while not self.urgent and not self.bulk and self.switch_to is None:
            self.wake = trio.Event()
            await self.wake.wait()
        if self.switch_to is not None:
            return []
        taken = list(self.urgent)
        self.urgent.clear()
        while self.bulk:
            taken.append(self.bulk.popleft())
            if getattr(taken[-1][1], "records", ()):
                break
        return taken


class Links:
    """All outbound links of one agent. `run` must be started in the agent's nursery."""

    def __init__(
        self,
        config: NodeConfig,
        identity: Identity,
        secrets: tuple[bytes, ...],
        deliver: Deliver,
        lost: Lost,
        status: TransportStatus,
    ) -> None:
        self.config = config
        self.identity = identity
        self.secrets = secrets
        self._deliver = deliver
        self._lost = lost
        self.status = status
        self._links: dict[Address, _Link] = {}
        self._dial: dict[Address, Address] = dict(config.address_map)
        self._backoff_until: dict[Address, float] = {}
        # Inbound connections being served, by proven peer id, newest last (rule 7).
        self._inbound: dict[bytes, list[PeerConnection]] = {}
        self._nursery: trio.Nursery | None = None
        self.dropped_messages = 0
        self.overflows = 0
        # Dials not made or given up because the peer's own connection serves (rule 7).
        self.dials_saved = 0
        # Of our own dials, those cancelled in progress and those given up once
        # established, for the peer's (rule 7): what mutual dials cost.
        self.dials_cancelled = 0
        self.dials_given_up = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep(math.inf)

    def enqueue(self, address: Address, peer: bytes | None, message: object) -> None:
        """Queue a message for `address` (rule 1); never waits."""
        address = (address[0], address[1])
        link = self._links.get(address)
        if link is None:
            inbound = self._usable_inbound(peer)
            if inbound is None and trio.current_time() < self._backoff_until.get(
                    address, -math.inf):
                self.dropped_messages += 1
                return
            assert self._nursery is not None, "Links.run is not running"
            if len(self._links) >= LINKS_MAX:
                idlest = min(self._links.values(), key=lambda other: other.last_used)
                self.close(idlest.address)
            link = _Link(address, peer)
            if inbound is not None:
                self.dials_saved += 1
                link.switch_to, link.dialled = inbound, False
            self._links[address] = link
            self._nursery.start_soon(self._run_link, link)
        if not link.put(peer, message):
            self.overflows += 1
            logger.warning("peer %s is not keeping up; dropping its link",
                           format_address(address))
            self.close(address)

    @contextlib.contextmanager
    def offered(self, connection: PeerConnection) -> Iterator[None]:
        """Serve an inbound connection inside this block: meanwhile links to its peer may
        send over it (rule 7). The caller receives from it; the links only send."""
        self.offer(connection)
        try:
            yield
        finally:
            self.withdraw(connection)

    def offer(self, connection: PeerConnection) -> None:
        """An inbound connection proved its peer: links to that peer may send over it, and a
        link of ours to it switches to it when the tie-break says so (rule 7)."""
        peer = connection.peer_id
        self._inbound.setdefault(peer, []).append(connection)
        for link in list(self._links.values()):
            if link.peer_id() != peer:
                continue
            if link.dialled and link.connection is None:
                # Our dial is still in progress, the peer's is done: whichever id dialled
                # it, it serves, and the rest of our handshake is saved (rule 7).
                self.dials_saved += 1
                link.switch(connection)
            elif not link.dialled or self.identity.node_id > peer:
                link.switch(connection)

    def withdraw(self, connection: PeerConnection) -> None:
        """The inbound connection is no longer served: no link may take it up any more."""
        serving = self._inbound.get(connection.peer_id, [])
        if connection in serving:
            serving.remove(connection)
        if not serving:
            self._inbound.pop(connection.peer_id, None)

    def withdraw_peer(self, peer: bytes) -> None:
        """Forget every inbound connection of `peer` (they are being cut)."""
        self._inbound.pop(peer, None)

    def _usable_inbound(self, peer: bytes | None) -> PeerConnection | None:
        if peer is None:
            return None
        serving = [c for c in self._inbound.get(peer, ()) if c.close_reason is None]
        return serving[-1] if serving else None

    def reachable(self, address: Address) -> None:
        """The member at `address` is alive again: forget a failed dial's backoff (rule 3)."""
        self._backoff_until.pop((address[0], address[1]), None)

    def close(self, address: Address) -> _Link | None:
        """Close the link to `address`; the link closed, or None if there was none."""
        link = self._links.pop((address[0], address[1]), None)
        if link is not None:
            link.cancel_scope.cancel()
        return link

    def connected(self) -> list[tuple[Address, bytes]]:
        return [
            (link.address, link.connection.peer_id)
            for link in self._links.values()
            if link.connection is not None
        ]

    async def _run_link(self, link: _Link) -> None:
        try:
            with link.cancel_scope:
                if link.switch_to is None:
                    link.connection = await self._dial_for(link)
                    if (link.connection is not None and link.switch_to is not None
                            and self.identity.node_id < link.connection.peer_id):
                        # The switch came too late to stop our handshake: the peer holds
                        # ours too, so the lower id keeps its own, as the peer does (rule 7).
                        link.switch_to = None
                while True:
                    if link.switch_to is not None:  # rule 7: carry on over the peer's
                        if link.dialled and link.connection is not None:
                            self.dials_given_up += 1
                            await link.connection.aclose()
                        link.connection, link.switch_to = link.switch_to, None
                        link.dialled = False
                    if link.connection is None:
                        break
                    await self._carry(link, link.connection)
                    if link.switch_to is None:
                        break
        finally:
            if link.dialled and link.connection is not None:
                await link.connection.aclose()  # inbound ones are the listener's to close
            if self._links.get(link.address) is link:
                del self._links[link.address]
            self._lost(link.address)

    async def _dial_for(self, link: _Link) -> PeerConnection | None:
        """Dial and authenticate `link`'s address; None when that failed (the address is
        then backed off, rule 3) or a switch made the dial pointless (rule 7)."""
        with link.dial_scope:
            try:
                connection = await connect(
                    self._dial.get(link.address, link.address), self.identity,
                    self.secrets, self.config.wire, expected_peer=link.peer,
                    status=self.status,
                )
            except HandshakeFailed as error:
                if link.address not in self._backoff_until:
                    logger.info("cannot reach %s: %s", format_address(link.address),
                                error.reason)
                self._backoff_until[link.address] = trio.current_time() + DIAL_BACKOFF_S
                return None
            self._backoff_until.pop(link.address, None)
            return connection
        self.dials_cancelled += 1
        return None  # cancelled by a switch: `link.switch_to` holds the connection to use

    async def _carry(self, link: _Link, connection: PeerConnection) -> None:
        """Send the link's queue over `connection` (and, if we dialled it, deliver what
        arrives on it) until it closes or a switch is asked for (then once the batch being
        written is out)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_loop, link, connection, nursery)
            if link.dialled:
                await self._receive_loop(link, connection)
            else:
                await connection.wait_closed()
            nursery.cancel_scope.cancel()

    async def _send_loop(self, link: _Link, connection: PeerConnection,
                         nursery: trio.Nursery) -> None:
        try:
            while link.switch_to is None:
                messages = []
                for peer, message in await link.get():
                    if peer is not None and peer != connection.peer_id:
                        self.dropped_messages += 1
                        logger.warning(
                            "%s answers as another node than expected; message dropped",
                            format_address(link.address),
                        )
                        continue
                    messages.append(message)
                if messages:
                    await connection.send_many(messages)
        except ConnectionClosed:
            pass
        nursery.cancel_scope.cancel()

    async def _receive_loop(self, link: _Link, connection: PeerConnection) -> None:
        try:
            # Once the link is closed, stop: a message already buffered is returned without
            # a checkpoint, so the cancellation alone would not keep it from the core.
            while not link.cancel_scope.cancel_called:
                message = await connection.receive()
                self._deliver(connection.peer_id, message)
        except ConnectionClosed:
            return
