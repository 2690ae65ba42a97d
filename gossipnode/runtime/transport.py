"""Secure peer connections over TCP: the Trio shell around wire/ (handshake, channel).

Theory of operation:
1. `connect` dials a peer and runs the initiator side of the handshake; `serve`
   (runtime/listener.py) runs the responder side for each accepted connection. Both
   produce a `PeerConnection`, whose `send`/`receive` carry registered messages
   (wire/messages.py) through the secure channel (wire/channel.py). `establish` runs a
   handshake over any Trio stream (memory streams in tests).
2. The sans-IO machines decide everything; this module only moves bytes and arms the
   handshake timeout (`WireConfig.handshake_timeout_s`). The authenticated connection
   itself, its frames and its limits, is runtime/peer_connection.py.
3. Before a peer is authenticated nothing but handshake frames is read from it (the
   handshake refuses larger frames and extra bytes), and nothing it sends reaches a handler.
4. Every dropped connection is logged on the "gossipnode.wire" logger with its reason, and
   recorded in `TransportStatus.recent_drops` when a status object is given (for `status`).
   Peer misbehaviour never raises out of `serve`; `receive` raises `ConnectionClosed`.
"""

from __future__ import annotations

import trio

from ..config import WireConfig
from ..wire.handshake import (
    PROTOCOL_VERSIONS,
    Handshake,
    HandshakeError,
    HandshakeResult,
    Signer,
)
from ..wire.messages import MessageRegistry
from ..wire.peer_messages import PEER_MESSAGES
from .drops import log_drop
from .peer_connection import ConnectionClosed, HandshakeFailed, PeerConnection, logger
from .transport_status import (
    FRAME_OVERHEAD_BYTES,
    TransportStatus,
    drop_kind,
    message_label,
)

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
    "logger",
    "message_label",
]

# One read during the handshake: the largest handshake message is 1 KiB.
HANDSHAKE_READ_BYTES = 4096
# A refusal is flushed to the peer for at most this long before we close anyway.
REFUSAL_FLUSH_S = 0.5


def describe_address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


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
    if status is not None:
        status.handshakes_completed += 1
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
