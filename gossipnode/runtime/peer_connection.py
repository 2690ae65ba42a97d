"""An authenticated connection to one peer: messages in and out through the secure channel,
bundled and compressed into frames (wire/peer_frames.py), within the transport's limits.

Rules:
1. `send_many` encodes every message first (a message that does not fit a frame is the
   caller's error, nothing is written), then seals and writes the frames under one lock,
   so concurrent senders never interleave bytes.
2. `receive` refuses what exceeds the limits before the work it would cost: partial frames
   count against one budget shared by all connections (`BUFFERED_BYTES_MAX`), and a
   membership message other than a push-pull is refused by its declared type and size
   before any decoding (`SMALL_MESSAGE_BYTES_MAX`).
3. A peer that misbehaves (a bad frame, a failed tag, a message outside the schema) is
   dropped: logged and recorded as a drop; `receive` then raises `ConnectionClosed`.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence

import trio

from ..core.errors import LocalProtocolError, RemoteProtocolError
from ..core.membership import Ack, Gossip, Nack, Ping, PingRequest
from ..wire.channel import SecureChannel
from ..wire.messages import MessageRegistry
from ..wire.peer_frames import FrameReader, FrameWriter, carries_secret_keys, frame_bytes_bound
from ..wire.peer_messages import PEER_MESSAGES
from .drops import log_drop
from .transport_status import TransportStatus, message_label
from .transport_status import attribute as _attribute

__all__ = ["ConnectionClosed", "HandshakeFailed", "PeerConnection"]

logger = logging.getLogger("gossipnode.wire")

# One read once authenticated: large enough for a 64 KiB frame in one call.
RECEIVE_BYTES = 256 * 1024
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
