"""Secure peer connections over TCP: the Trio shell around wire/ (handshake, channel).

Theory of operation:
1. `connect` dials a peer and runs the initiator side of the handshake; `serve` listens and
   runs the responder side for each accepted connection, then hands every authenticated
   connection to `handler`. Both produce a `PeerConnection`, whose `send`/`receive` carry
   registered messages (wire/messages.py) through the secure channel (wire/channel.py).
2. The sans-IO machines decide everything; this module only moves bytes, arms timeouts and
   enforces the listener limits of `WireConfig`:
   - `handshake_timeout_s`: a connection that has not authenticated by then is dropped;
   - `unauthenticated_connections_max`: when that many handshakes are pending, a new
     connection evicts the OLDEST pending one. Idle or slow connections are thus pushed out
     by newer ones, and a real peer (whose handshake takes one round trip) completes
     unless the attacker opens more than that many connections within that round trip;
   - `connections_per_peer_max`: more authenticated connections from one node id are
     closed at once.
3. Before a peer is authenticated nothing but handshake frames is read from it (the
   handshake refuses larger frames and extra bytes), and nothing it sends reaches a handler.
4. Every dropped connection is logged on the "gossipnode.wire" logger with its reason, and
   recorded in `TransportStatus.recent_drops` when a status object is given (for `status`).
   Peer misbehaviour never raises out of `serve`; `receive` raises `ConnectionClosed`.
"""

from __future__ import annotations

import collections
import errno
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from ..config import WireConfig
from ..core.errors import RemoteProtocolError
from ..wire.channel import SecureChannel
from ..wire.handshake import (
    PROTOCOL_VERSIONS,
    Handshake,
    HandshakeError,
    HandshakeResult,
    Signer,
)
from ..wire.messages import MessageRegistry
from ..wire.peer_messages import PEER_MESSAGES

__all__ = [
    "ConnectionClosed",
    "HandshakeFailed",
    "PeerConnection",
    "TransportStatus",
    "connect",
    "establish",
    "serve",
]

logger = logging.getLogger("gossipnode.wire")

# One read during the handshake: the largest handshake message is 1 KiB.
HANDSHAKE_READ_BYTES = 4096
# One read once authenticated: large enough for a 64 KiB frame in one call.
RECEIVE_BYTES = 256 * 1024
# Drop reasons kept for `status`: enough to see a pattern, bounded against floods.
RECENT_DROPS_MAX = 64
# A refusal is flushed to the peer for at most this long before we close anyway.
REFUSAL_FLUSH_S = 0.5
# Backoff after accept() fails for lack of file descriptors, as trio.serve_listeners does.
ACCEPT_BACKOFF_S = 0.1


class ConnectionClosed(Exception):
    """The connection is closed; `reason` says why (peer closed it, or it misbehaved)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandshakeFailed(ConnectionClosed):
    """The handshake did not complete (wrong secret, bad signature, no common version...)."""


@dataclass
class TransportStatus:
    """Counters and recent drop reasons of a listener (and of `connect` calls given it)."""

    accepted: int = 0
    authenticated: int = 0
    handshakes_failed: int = 0
    evicted: int = 0
    timed_out: int = 0
    over_peer_limit: int = 0
    recent_drops: collections.deque[tuple[str, str]] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT_DROPS_MAX)
    )

    def record_drop(self, peer: str, reason: str) -> None:
        self.recent_drops.append((peer, reason))


def _describe(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def _drop(status: TransportStatus | None, peer: str, reason: str) -> None:
    logger.warning("dropped connection %s: %s", peer, reason)
    if status is not None:
        status.record_drop(peer, reason)


class PeerConnection:
    """An authenticated connection to one peer node.

    One task may send while another receives; `send` serialises concurrent senders. Only
    one task may call `receive` at a time.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        peer_id: bytes,
        version: int,
        channel: SecureChannel,
        *,
        registry: MessageRegistry,
        remote: str,
        status: TransportStatus | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.version = version
        self.remote = remote
        self.close_reason: str | None = None
        self._stream = stream
        self._channel = channel
        self._registry = registry
        self._status = status
        self._send_lock = trio.Lock()

    def __repr__(self) -> str:
        return f"<PeerConnection {self.peer_id.hex()[:16]} at {self.remote} v{self.version}>"

    async def send(self, message: object) -> None:
        """Encode, seal and write one message.

        Raises:
            LocalProtocolError: the message is not registered or does not fit its schema.
            ConnectionClosed: the connection is (or just became) closed.
        """
        payload = self._registry.encode(message)
        async with self._send_lock:
            if self.close_reason is not None:
                raise ConnectionClosed(self.close_reason)
            try:
                await self._stream.send_all(self._channel.seal(payload))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
                await self._close(f"send failed: {error or type(error).__name__}")
                raise ConnectionClosed(self.close_reason or "closed") from None

    async def receive(self) -> object:
        """The next message from the peer.

        Raises:
            ConnectionClosed: the peer closed the connection, or misbehaved (a bad frame, a
                frame that fails authentication, a message outside the schema); in that
                case the connection was dropped and the reason logged.
        """
        while True:
            if self.close_reason is not None:
                raise ConnectionClosed(self.close_reason)
            try:
                payload = self._channel.next_payload()
                if payload is not None:
                    return self._registry.decode(payload)
            except RemoteProtocolError as error:
                await self._close(str(error), misbehaved=True)
                continue
            try:
                data = await self._stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
                await self._close(f"receive failed: {error or type(error).__name__}")
                continue
            if not data:
                if self._channel.buffered_bytes:
                    await self._close("peer closed the connection mid-frame", misbehaved=True)
                else:
                    await self._close("peer closed the connection")
                continue
            try:
                self._channel.receive_data(data)
            except RemoteProtocolError as error:
                await self._close(str(error), misbehaved=True)

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        await self._close("closed by us")

    async def _close(self, reason: str, *, misbehaved: bool = False) -> None:
        if self.close_reason is not None:
            return
        self.close_reason = reason
        if misbehaved:
            _drop(self._status, f"{self.remote} ({self.peer_id.hex()[:16]})", reason)
        else:
            logger.info("connection %s closed: %s", self.remote, reason)
        with trio.CancelScope(shield=True):
            await self._stream.aclose()


async def establish(
    stream: trio.abc.Stream,
    handshake: Handshake,
    *,
    registry: MessageRegistry = PEER_MESSAGES,
    remote: str = "?",
    status: TransportStatus | None = None,
) -> PeerConnection:
    """Run `handshake` over `stream` (no timeout: the caller sets one) and wrap the result.

    On failure the stream is closed, the reason logged, and HandshakeFailed raised.
    """
    try:
        result = await _run_handshake(stream, handshake)
    except HandshakeFailed as error:
        if status is not None:
            status.handshakes_failed += 1
        _drop(status, remote, f"handshake failed: {error.reason}")
        with trio.CancelScope(shield=True):
            await stream.aclose()
        raise
    except BaseException:
        with trio.CancelScope(shield=True):
            await stream.aclose()
        raise
    return PeerConnection(
        stream,
        result.peer_id,
        result.version,
        result.channel,
        registry=registry,
        remote=remote,
        status=status,
    )


async def _run_handshake(stream: trio.abc.Stream, handshake: Handshake) -> HandshakeResult:
    try:
        outgoing = handshake.data_to_send()
        if outgoing:
            await stream.send_all(outgoing)
        while handshake.result is None:
            data = await stream.receive_some(HANDSHAKE_READ_BYTES)
            if not data:
                raise HandshakeFailed("peer closed the connection during the handshake")
            try:
                handshake.receive_data(data)
            except HandshakeError as error:
                refusal = handshake.data_to_send()
                if refusal:
                    with trio.move_on_after(REFUSAL_FLUSH_S):
                        await stream.send_all(refusal)
                raise HandshakeFailed(str(error)) from None
            outgoing = handshake.data_to_send()
            if outgoing:
                await stream.send_all(outgoing)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
        raise HandshakeFailed(f"connection lost during the handshake: {error}") from None
    return handshake.result


async def connect(
    address: tuple[str, int],
    identity: Signer,
    secrets: tuple[bytes, ...],
    config: WireConfig,
    expected_peer: bytes | None = None,
    *,
    registry: MessageRegistry = PEER_MESSAGES,
    status: TransportStatus | None = None,
    versions: tuple[int, ...] = PROTOCOL_VERSIONS,
) -> PeerConnection:
    """Dial `address` and authenticate. Connects with the first of `secrets`.

    Args:
        expected_peer: the node id we mean to reach; None on first contact with a seed.

    Raises:
        HandshakeFailed: could not connect, or the handshake failed (reason in the text).
    """
    remote = _describe(address)
    handshake = Handshake.initiator(
        identity,
        secrets,
        frame_bytes_max=config.frame_bytes_max,
        versions=versions,
        expected_peer=expected_peer,
    )
    with trio.move_on_after(config.handshake_timeout_s) as scope:
        try:
            stream = await trio.open_tcp_stream(*address)
        except OSError as error:
            reason = f"cannot connect: {error.strerror or error}"
            _drop(status, remote, reason)
            raise HandshakeFailed(reason) from None
        connection = await establish(
            stream, handshake, registry=registry, remote=remote, status=status
        )
    if scope.cancelled_caught:
        reason = f"handshake timeout after {config.handshake_timeout_s} s"
        _drop(status, remote, reason)
        raise HandshakeFailed(reason)
    return connection


Handler = Callable[[PeerConnection], Awaitable[None]]


class _Gate:
    """The listener's bookkeeping: pending handshakes (oldest first) and peers' counts."""

    def __init__(self, config: WireConfig, status: TransportStatus) -> None:
        self.config = config
        self.status = status
        self.pending: collections.OrderedDict[int, trio.CancelScope] = collections.OrderedDict()
        self.evicted: set[int] = set()
        self.per_peer: collections.Counter[bytes] = collections.Counter()
        self.ids = itertools.count()

    def admit(self) -> int:
        """Register a new unauthenticated connection, evicting the oldest if full."""
        while self.pending and len(self.pending) >= self.config.unauthenticated_connections_max:
            oldest, scope = self.pending.popitem(last=False)
            self.evicted.add(oldest)
            scope.cancel()
        ticket = next(self.ids)
        self.pending[ticket] = trio.CancelScope(
            deadline=trio.current_time() + self.config.handshake_timeout_s
        )
        return ticket


async def serve(
    listen_address: tuple[str, int],
    identity: Signer,
    secrets: tuple[bytes, ...],
    config: WireConfig,
    handler: Handler,
    *,
    registry: MessageRegistry = PEER_MESSAGES,
    status: TransportStatus | None = None,
    versions: tuple[int, ...] = PROTOCOL_VERSIONS,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept peers on `listen_address` until cancelled; start with `nursery.start`.

    `task_status.started` reports the bound (host, port) (useful with port 0). Each
    authenticated connection is passed to `await handler(connection)` in its own task and
    closed when the handler returns. Peer misbehaviour is logged, never raised.
    """
    host, port = listen_address
    listeners = await trio.open_tcp_listeners(port, host=host)
    gate = _Gate(config, status if status is not None else TransportStatus())
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
    secrets: tuple[bytes, ...],
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
            ticket = gate.admit()
            nursery.start_soon(
                _serve_one, stream, ticket, gate, identity, secrets, handler, registry, versions
            )


async def _serve_one(
    stream: trio.SocketStream,
    ticket: int,
    gate: _Gate,
    identity: Signer,
    secrets: tuple[bytes, ...],
    handler: Handler,
    registry: MessageRegistry,
    versions: tuple[int, ...],
) -> None:
    try:
        remote = _describe(stream.socket.getpeername())
    except OSError:
        remote = "?"
    status = gate.status
    handshake = Handshake.responder(
        identity, secrets, frame_bytes_max=gate.config.frame_bytes_max, versions=versions
    )
    # None when a newer connection evicted this one before this task started.
    scope = gate.pending.get(ticket)
    connection: PeerConnection | None = None
    try:
        if scope is not None:
            with scope:
                connection = await establish(
                    stream, handshake, registry=registry, remote=remote, status=status
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
        await connection._close(
            f"over the limit of {gate.config.connections_per_peer_max} connections per peer",
            misbehaved=True,
        )
        return
    status.authenticated += 1
    gate.per_peer[peer_id] += 1
    try:
        await handler(connection)
    except ConnectionClosed:
        pass  # the connection logged why
    except Exception:
        logger.exception("handler for %r failed", connection)
    finally:
        gate.per_peer[peer_id] -= 1
        if not gate.per_peer[peer_id]:
            del gate.per_peer[peer_id]
        await connection.aclose()


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
    _drop(gate.status, remote, reason)
    with trio.CancelScope(shield=True):
        await stream.aclose()
