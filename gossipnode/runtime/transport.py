"""Secure peer connections over TCP: the Trio shell around wire/ (handshake, channel).

Theory of operation:
1. `connect` dials a peer and runs the initiator side of the handshake; `serve`
   (runtime/listener.py) runs the responder side for each accepted connection. Both
   produce a `PeerConnection`, whose `send`/`receive` carry registered messages
   (wire/messages.py) through the secure channel (wire/channel.py). `establish` runs a
   handshake over any Trio stream (memory streams in tests).
2. The sans-IO machines decide everything; this module only moves bytes and arms the
   handshake timeout (`WireConfig.handshake_timeout_s`).
3. Before a peer is authenticated nothing but handshake frames is read from it (the
   handshake refuses larger frames and extra bytes), and nothing it sends reaches a handler.
4. Every dropped connection is logged on the "gossipnode.wire" logger with its reason, and
   recorded in `TransportStatus.recent_drops` when a status object is given (for `status`).
   Peer misbehaviour never raises out of `serve`; `receive` raises `ConnectionClosed`.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence

import trio

from ..config import WireConfig
from ..core.errors import LocalProtocolError, RemoteProtocolError
from ..core.membership import Ack, Gossip, Nack, Ping, PingRequest
from ..wire.channel import SecureChannel
from ..wire.handshake import (
    PROTOCOL_VERSIONS,
    Handshake,
    HandshakeError,
    HandshakeResult,
    Signer,
)
from ..wire.messages import MessageRegistry
from ..wire.peer_frames import FrameReader, FrameWriter, carries_secret_keys, frame_bytes_bound
from ..wire.peer_messages import PEER_MESSAGES
from .drops import log_drop
from .transport_status import (
    FRAME_OVERHEAD_BYTES,
    TransportStatus,
    drop_kind,
    message_label,
)
from .transport_status import attribute as _attribute

__all__ = [
    "FRAME_OVERHEAD_BYTES",
    "ConnectionClosed",
    "HandshakeFailed",
    "PeerConnection",
    "TransportStatus",
    "connect",
    "drop_kind",
    "establish",
    "log_drop",
    "message_label",
]

logger = logging.getLogger("gossipnode.wire")

# One read during the handshake: the largest handshake message is 1 KiB.
HANDSHAKE_READ_BYTES = 4096
# One read once authenticated: large enough for a 64 KiB frame in one call.
RECEIVE_BYTES = 256 * 1024
# A refusal is flushed to the peer for at most this long before we close anyway.
REFUSAL_FLUSH_S = 0.5
# Partial frames buffered over all connections at once. One 4 MiB frame each from a dozen
# peers fits; a hundred connections each sending the start of one cannot pin 400 MiB:
# the connection whose bytes go over the budget is dropped.
BUFFERED_BYTES_MAX = 48 * 1024 * 1024
# Membership messages other than a push-pull piggyback at most
# membership.gossip_message_bytes_max (4 KiB) of statements: one larger than this is
# refused by its declared type and size, before any decoding.
SMALL_MESSAGE_TYPE_IDS = frozenset(
    PEER_MESSAGES.type_id(cls) for cls in (Ping, Ack, PingRequest, Nack, Gossip)
)
SMALL_MESSAGE_BYTES_MAX = 64 * 1024


class ConnectionClosed(Exception):
    """The connection is closed; `reason` says why (peer closed it, or it misbehaved)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandshakeFailed(ConnectionClosed):
    """The handshake did not complete (wrong secret, bad signature, no common version...)."""


def describe_address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def _type_id(payload: bytes) -> int | None:
    """The type id a message payload declares (`[type_id, ...]` in canonical CBOR), read
    from its first bytes without decoding the rest; None if it does not start so."""
    if len(payload) < 2 or not 0x81 <= payload[0] <= 0x9B:
        return None
    offset = 1 + {0x98: 1, 0x99: 2, 0x9A: 4, 0x9B: 8}.get(payload[0], 0)
    if len(payload) <= offset:
        return None
    head = payload[offset]
    if head < 0x18:
        return head
    if head == 0x18 and len(payload) > offset + 1:
        return payload[offset + 1]
    return None


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
        depth_max: int | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.version = version
        self.remote = remote
        self.close_reason: str | None = None
        self._stream = stream
        self._channel = channel
        self._registry = registry
        self._status = status
        self._depth_max = depth_max
        self._send_lock = trio.Lock()
        self._writer = FrameWriter()
        self._reader = FrameReader(channel.frame_bytes_max)
        # Messages of a frame already opened, not yet returned by `receive`.
        self._inbox: collections.deque[object] = collections.deque()
        # Bytes of this connection counted in status.buffered_bytes.
        self._charged = 0
        # trio time of the last message received: the idlest connection is closed first.
        self.last_active = trio.current_time()
        self._closed = trio.Event()

    def __repr__(self) -> str:
        return f"<PeerConnection {self.peer_id.hex()[:16]} at {self.remote} v{self.version}>"

    async def send(self, message: object) -> None:
        """Encode, seal and write one message (see `send_many`)."""
        await self.send_many([message])

    async def send_many(self, messages: Sequence[object]) -> None:
        """Encode `messages`, bundle and compress them into frames (wire/peer_frames.py),
        seal and write those, in order.

        Raises:
            LocalProtocolError: a message is not registered, does not fit its schema, or is
                too large for a frame.
            ConnectionClosed: the connection is (or just became) closed.
        """
        encoded = []
        for message in messages:
            data = self._registry.encode(message)
            if frame_bytes_bound(len(data)) > self._channel.payload_bytes_max:
                raise LocalProtocolError(
                    f"{type(message).__name__} of {len(data)} bytes does not fit a frame of "
                    f"{self._channel.frame_bytes_max} bytes (wire.frame_bytes_max)")
            encoded.append((data, carries_secret_keys(message)))
        async with self._send_lock:
            if self.close_reason is not None:
                raise ConnectionClosed(self.close_reason)
            # Compressed in the order sealed: the receiver's context follows the frames.
            payloads = self._writer.frames(encoded)
            try:
                await self._stream.send_all(
                    b"".join(self._channel.seal(payload) for payload in payloads))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
                await self._close(f"send failed: {error or type(error).__name__}")
                raise ConnectionClosed(self.close_reason or "closed") from None
            if self._status is not None:
                self._status.frames_sent += len(payloads)
                _attribute(self._status.bytes_sent, sum(map(len, payloads)),
                           [(message_label(m), len(d)) for m, (d, _) in zip(
                               messages, encoded, strict=True)])

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
            if self._inbox:
                return self._inbox.popleft()
            try:
                payload = self._channel.next_payload()
                self._charge()
                if payload is not None:
                    self.last_active = trio.current_time()
                    self._inbox.extend(self._open(payload))
                    continue
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
                continue
            self._charge()
            if self._status is not None and self._status.buffered_bytes > BUFFERED_BYTES_MAX:
                self._status.over_buffer_budget += 1
                await self._close(
                    f"over the budget of {BUFFERED_BYTES_MAX} bytes of partial frames "
                    "buffered for all peers", misbehaved=True,
                )

    def _charge(self) -> None:
        """Count this connection's buffered bytes in the shared budget."""
        buffered = 0 if self.close_reason is not None else self._channel.buffered_bytes
        if self._status is not None:
            self._status.buffered_bytes += buffered - self._charged
        self._charged = buffered

    def _open(self, payload: bytes) -> list[object]:
        """The messages of one frame, each checked for size by its type before decoding."""
        encoded = self._reader.messages(payload)
        messages = []
        for data in encoded:
            self._check_size(data)
            messages.append(self._registry.decode(data, depth_max=self._depth_max))
        if self._status is not None:
            self._status.frames_received += 1
            _attribute(self._status.bytes_received, len(payload),
                       [(message_label(m), len(d)) for m, d in zip(
                           messages, encoded, strict=True)])
        return messages

    def _check_size(self, payload: bytes) -> None:
        if (
            len(payload) > SMALL_MESSAGE_BYTES_MAX
            and self._registry is PEER_MESSAGES
            and _type_id(payload) in SMALL_MESSAGE_TYPE_IDS
        ):
            if self._status is not None:
                self._status.over_message_size += 1
            raise RemoteProtocolError(
                f"a membership message of {len(payload)} bytes, over the limit of "
                f"{SMALL_MESSAGE_BYTES_MAX} bytes"
            )

    async def wait_closed(self) -> None:
        """Return once the connection is closed, by either end, for whatever reason."""
        await self._closed.wait()

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        await self._close("closed by us")

    async def drop(self, reason: str) -> None:
        """Close the connection because the peer misbehaved: logged and recorded as a drop.

        For the shell to carry out the core's `Disconnect(reason)`; idempotent.
        """
        await self._close(reason, misbehaved=True)

    async def _close(self, reason: str, *, misbehaved: bool = False) -> None:
        if self.close_reason is not None:
            return
        self.close_reason = reason
        self._closed.set()
        self._inbox.clear()
        self._charge()  # nothing buffered counts any more
        if misbehaved:
            log_drop(self._status, f"{self.remote} ({self.peer_id.hex()[:16]})", reason)
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
    depth_max: int | None = None,
) -> PeerConnection:
    """Run `handshake` over `stream` (no timeout: the caller sets one) and wrap the result.

    `remote` names the peer in logs; `depth_max` is the CBOR nesting limit of its messages.

    On failure the stream is closed, the reason logged, and HandshakeFailed raised.
    """
    try:
        result = await _run_handshake(stream, handshake, status)
    except HandshakeFailed as error:
        if status is not None:
            status.handshakes_failed += 1
        log_drop(status, remote, f"handshake failed: {error.reason}")
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
        depth_max=depth_max,
    )


async def _run_handshake(
    stream: trio.abc.Stream, handshake: Handshake, status: TransportStatus | None
) -> HandshakeResult:
    counted = status if status is not None else TransportStatus()

    async def send(data: bytes) -> None:
        counted.handshake_bytes += len(data)
        await stream.send_all(data)

    try:
        outgoing = handshake.data_to_send()
        if outgoing:
            await send(outgoing)
        while handshake.result is None:
            data = await stream.receive_some(HANDSHAKE_READ_BYTES)
            if not data:
                raise HandshakeFailed("peer closed the connection during the handshake")
            counted.handshake_bytes += len(data)
            try:
                handshake.receive_data(data)
            except HandshakeError as error:
                refusal = handshake.data_to_send()
                if refusal:
                    with trio.move_on_after(REFUSAL_FLUSH_S):
                        await send(refusal)
                raise HandshakeFailed(str(error)) from None
            outgoing = handshake.data_to_send()
            if outgoing:
                await send(outgoing)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
        raise HandshakeFailed(f"connection lost during the handshake: {error}") from None
    # Bytes read past the handshake are the channel's first frames, counted as such.
    counted.handshake_bytes -= handshake.result.channel.buffered_bytes
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
    remote = describe_address(address)
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
            log_drop(status, remote, reason)
            raise HandshakeFailed(reason) from None
        connection = await establish(
            stream,
            handshake,
            registry=registry,
            remote=remote,
            status=status,
            depth_max=config.cbor_depth_max,
        )
    if scope.cancelled_caught:
        reason = f"handshake timeout after {config.handshake_timeout_s} s"
        log_drop(status, remote, reason)
        raise HandshakeFailed(reason)
    return connection
