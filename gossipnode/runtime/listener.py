"""The peer listener: accepts TCP connections, authenticates them, hands them to a handler.

Rules (the limits are `WireConfig`'s):
1. `handshake_timeout_s`: a connection that has not authenticated by then is dropped.
2. `unauthenticated_connections_max`: when that many handshakes are pending, a new
   connection evicts an old pending one: the oldest of the remote host that holds the
   most slots. Idle, stalled and slow connections are thus pushed out by newer ones and
   cannot hold the slots; a real peer (whose handshake takes about one round trip)
   completes unless an attacker opens, from more hosts than the peer, more connections
   than the cap within that round trip. A cap that refused new connections instead would
   let 64 idle sockets lock every peer out for the whole handshake timeout.
3. `connections_per_peer_max` per node id and `connections_max` in all (never more than
   half the descriptor limit). A new authenticated connection over the per-peer limit
   closes that peer's idlest one (the one that has gone longest without a message): a
   real peer that reconnects is never locked out by its own stale connection. One over
   `connections_max` closes the idlest connection of a peer that is not a live member
   (`is_member`: alive or suspect in this agent's member table), such as a fresh, pending
   or unknown identity; only when every connection is a live member's, the idlest of all.
   Fresh identities made with the cluster secret thus cannot exhaust descriptors, and
   however fast they come they cannot close established members' links (a member may be
   quiet for about a probe interval, so its link is often the idlest). An attacker that
   makes itself a member (its own signed alive statement) is spared too, but with at most
   `connections_per_peer_max` connections per identity: to hold many it needs as many
   member identities, each one listed by `members` on every agent and counted against
   `membership.members_max`; and if live members' connections alone reach
   `connections_max`, a newcomer again closes the idlest member's, which then redials.
4. Nothing a peer sends reaches `handler` before its handshake completes, and nothing a
   peer does raises out of `serve`: each drop is logged (logger "gossipnode.wire") with its
   reason and recorded in the `TransportStatus`.
"""

from __future__ import annotations

import collections
import errno
import itertools
from collections.abc import Awaitable, Callable

import trio

from ..config import WireConfig
from ..wire.handshake import PROTOCOL_VERSIONS, Handshake, Signer
from ..wire.handshake_cache import CachedReply, ReplyCache
from ..wire.messages import MessageRegistry
from ..wire.peer_messages import PEER_MESSAGES
from .transport import (
    ConnectionClosed,
    HandshakeFailed,
    PeerConnection,
    TransportStatus,
    describe_address,
    establish,
    log_drop,
    logger,
)

__all__ = ["Handler", "IsMember", "serve"]

# Backoff after accept() fails for lack of file descriptors, as trio.serve_listeners does.
ACCEPT_BACKOFF_S = 0.1


Handler = Callable[[PeerConnection], Awaitable[None]]
# Whether a node id is a live (alive or suspect) member: spared by rule 3's eviction.
IsMember = Callable[[bytes], bool]
# The cluster secrets, or a function returning the current ones (rotated by a reload).
Secrets = tuple[bytes, ...] | Callable[[], tuple[bytes, ...]]


def nobody(node_id: bytes) -> bool:
    """The default `IsMember`: no peer is spared."""
    return False


class _Gate:
    """The listener's bookkeeping: pending handshakes (oldest first) and peers' counts."""

    def __init__(self, config: WireConfig, status: TransportStatus,
                 is_member: IsMember = nobody) -> None:
        self.config = config
        self.status = status
        self.is_member = is_member
        # ticket -> (remote host, the scope of its handshake), oldest first.
        self.pending: collections.OrderedDict[int, tuple[str, trio.CancelScope]] = (
            collections.OrderedDict()
        )
        self.evicted: set[int] = set()
        self.per_peer: collections.Counter[bytes] = collections.Counter()
        self.ids = itertools.count()
        # Authenticated connections being served.
        self.authenticated: set[PeerConnection] = set()
        # Replayed hellos are answered from here, at no cost (wire/handshake_cache.py).
        self.reply_cache = _CountedReplyCache(status)
        self.connections_max = min(config.connections_max, _descriptor_limit() // 2)

    def idlest(self, peer: bytes | None = None) -> PeerConnection | None:
        """The authenticated connection (of `peer`, if given) idle the longest."""
        candidates = [
            c for c in self.authenticated if c.close_reason is None and peer in (None, c.peer_id)
        ]
        return min(candidates, key=lambda c: c.last_active, default=None)

    def idlest_sparing_members(self) -> PeerConnection | None:
        """Rule 3: the idlest connection of a peer that is not a live member, else the
        idlest of all. Asks `is_member` only of connections idler than that one."""
        candidates = sorted(
            (c for c in self.authenticated if c.close_reason is None),
            key=lambda c: c.last_active,
        )
        spared = next((c for c in candidates if not self.is_member(c.peer_id)), None)
        return spared if spared is not None else next(iter(candidates), None)

    def admit(self, host: str) -> int:
        """Register a new unauthenticated connection from `host`; evict one if full.

        The victim is the oldest pending connection of the host that holds the most
        pending slots: a flood from a few addresses then evicts itself, not the peers
        that connect from elsewhere. Among equals, the oldest goes.
        """
        while self.pending and len(self.pending) >= self.config.unauthenticated_connections_max:
            held = collections.Counter(source for source, _ in self.pending.values())
            most = max(held.values())
            victim = next(t for t, (source, _) in self.pending.items() if held[source] == most)
            _, scope = self.pending.pop(victim)
            self.evicted.add(victim)
            scope.cancel()
        ticket = next(self.ids)
        deadline = trio.current_time() + self.config.handshake_timeout_s
        self.pending[ticket] = (host, trio.CancelScope(deadline=deadline))
        return ticket


async def serve(
    listen_address: tuple[str, int],
    identity: Signer,
    secrets: Secrets,
    config: WireConfig,
    handler: Handler,
    *,
    registry: MessageRegistry = PEER_MESSAGES,
    status: TransportStatus | None = None,
    versions: tuple[int, ...] = PROTOCOL_VERSIONS,
    is_member: IsMember = nobody,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept peers on `listen_address` until cancelled; start with `nursery.start`.

    `task_status.started` reports the bound (host, port) (useful with port 0). Each
    authenticated connection is passed to `await handler(connection)` in its own task and
    closed when the handler returns. Peer misbehaviour is logged, never raised.
    `is_member(node_id)`: whether a peer is a live member, spared by rule 3 (default: none).
    """
    host, port = listen_address
    listeners = await trio.open_tcp_listeners(port, host=host)
    gate = _Gate(config, status if status is not None else TransportStatus(), is_member)
    bound = listeners[0].socket.getsockname()
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(
                _accept_loop,
                listener,
                nursery,
                gate,
                identity,
                secrets,
                handler,
                registry,
                versions,
            )
        task_status.started((bound[0], bound[1]))


async def _accept_loop(
    listener: trio.SocketListener,
    nursery: trio.Nursery,
    gate: _Gate,
    identity: Signer,
    secrets: Secrets,
    handler: Handler,
    registry: MessageRegistry,
    versions: tuple[int, ...],
) -> None:
    async with listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError as error:
                if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS):
                    raise
                logger.error("accept failed (%s); backing off", error.strerror)
                await trio.sleep(ACCEPT_BACKOFF_S)
                continue
            gate.status.accepted += 1
            try:
                address = stream.socket.getpeername()
            except OSError:  # already reset by the peer; it gets a slot and fails at once
                address = ("?", 0)
            ticket = gate.admit(str(address[0]))
            nursery.start_soon(
                _serve_one,
                stream,
                describe_address(address),
                ticket,
                gate,
                identity,
                secrets,
                handler,
                registry,
                versions,
            )


async def _serve_one(
    stream: trio.SocketStream,
    remote: str,
    ticket: int,
    gate: _Gate,
    identity: Signer,
    secrets: Secrets,
    handler: Handler,
    registry: MessageRegistry,
    versions: tuple[int, ...],
) -> None:
    status = gate.status
    # A callable gives the secrets of the moment, so a reload (SIGHUP) rotates them.
    current = secrets() if callable(secrets) else secrets
    handshake = Handshake.responder(
        identity, current, frame_bytes_max=gate.config.frame_bytes_max, versions=versions,
        reply_cache=gate.reply_cache, now=trio.current_time(),
    )  # fmt: skip
    # None when a newer connection evicted this one before this task started.
    scope = gate.pending[ticket][1] if ticket in gate.pending else None
    connection: PeerConnection | None = None
    try:
        if scope is not None:
            with scope:
                connection = await establish(
                    stream,
                    handshake,
                    registry=registry,
                    remote=remote,
                    status=status,
                    depth_max=gate.config.cbor_depth_max,
                )
    except HandshakeFailed:
        return  # establish logged the reason and closed the stream
    finally:
        gate.pending.pop(ticket, None)
    if connection is None:
        # The handshake's scope was cancelled: by its deadline, or by an eviction.
        await _close_unauthenticated(stream, ticket, gate, remote)
        return
    peer_id = connection.peer_id
    if gate.per_peer[peer_id] >= gate.config.connections_per_peer_max:
        status.over_peer_limit += 1
        victim = gate.idlest(peer_id)
        if victim is not None:
            await victim.drop(
                f"closed the idlest: over {gate.config.connections_per_peer_max} "
                "connections from one peer (wire.connections_per_peer_max)"
            )
    if len(gate.authenticated) >= gate.connections_max:
        status.over_connection_limit += 1
        victim = gate.idlest_sparing_members()
        if victim is not None:
            await victim.drop(
                f"closed the idlest, members spared: over {gate.connections_max} "
                "authenticated connections (wire.connections_max)"
            )
    status.authenticated += 1
    gate.per_peer[peer_id] += 1
    gate.authenticated.add(connection)
    try:
        await handler(connection)
    except ConnectionClosed:
        pass  # the connection logged why
    except Exception:
        logger.exception("handler for %r failed", connection)
    finally:
        gate.authenticated.discard(connection)
        gate.per_peer[peer_id] -= 1
        if not gate.per_peer[peer_id]:
            del gate.per_peer[peer_id]
        await connection.aclose()


def _descriptor_limit() -> int:
    """The process's soft limit on open file descriptors (a generous guess where unknown)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 1 << 16
    return soft if soft > 0 else 1 << 16


async def _close_unauthenticated(
    stream: trio.SocketStream, ticket: int, gate: _Gate, remote: str
) -> None:
    """A handshake cancelled by eviction or its deadline: count, log, close."""
    if ticket in gate.evicted:
        gate.evicted.discard(ticket)
        gate.status.evicted += 1
        reason = "evicted: too many unauthenticated connections"
    else:
        gate.status.timed_out += 1
        reason = f"handshake timeout after {gate.config.handshake_timeout_s} s"
    log_drop(gate.status, remote, reason)
    with trio.CancelScope(shield=True):
        await stream.aclose()


class _CountedReplyCache(ReplyCache):
    """The reply cache, each hit (a replayed hello answered at no cost) counted in the
    status as `hello_replays`, for `info` and `metrics`."""

    __slots__ = ("_status",)

    def __init__(self, status: TransportStatus) -> None:
        super().__init__()
        self._status = status

    def get(self, key: bytes, now: float) -> CachedReply | None:
        entry = super().get(key, now)
        if entry is not None:
            self._status.hello_replays += 1
        return entry
