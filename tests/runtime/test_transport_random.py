"""Random bytes from a peer, before or after the handshake, end in a logged drop."""

import contextlib
import logging

import nacl.signing
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnode.identity import Identity
from gossipnode.runtime.transport import ConnectionClosed, HandshakeFailed, establish
from gossipnode.wire.handshake import Handshake
from tests.wire.samples import sample_registry

SECRET = b"s" * 32
ALICE = Identity(nacl.signing.SigningKey(b"a" * 32))
BOB = Identity(nacl.signing.SigningKey(b"b" * 32))
REGISTRY = sample_registry()
FRAME_BYTES_MAX = 4 * 1024 * 1024
TEST_TIMEOUT_S = 10


class Drops(logging.Handler):
    """Collects what the "gossipnode.wire" logger says during one example."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def collect_wire_logs():
    handler = Drops()
    logger = logging.getLogger("gossipnode.wire")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def drive(data, authenticated):
    """Feed `data` to a responder (after a real handshake if `authenticated`), then EOF.

    Returns the reason the responder dropped the connection.
    """
    left_stream, right_stream = trio.testing.memory_stream_pair()
    right = Handshake.responder(BOB, (SECRET,), frame_bytes_max=FRAME_BYTES_MAX)
    with trio.fail_after(TEST_TIMEOUT_S):
        if authenticated:
            left = Handshake.initiator(ALICE, (SECRET,), frame_bytes_max=FRAME_BYTES_MAX)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(establish, left_stream, left)
                connection = await establish(right_stream, right, registry=REGISTRY)
            await left_stream_send(left_stream, data)
            try:
                message = await connection.receive()
            except ConnectionClosed as error:
                return error.reason
            # Random bytes that open under the channel key: impossible in practice.
            raise AssertionError(f"random bytes decoded to {message!r}")
        reason = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(left_stream_send, left_stream, data)
            try:
                await establish(right_stream, right, registry=REGISTRY)
            except HandshakeFailed as error:
                reason = error.reason
        assert reason is not None, "random bytes completed a handshake"
        return reason


async def left_stream_send(stream, data):
    # The sender writes its garbage and hangs up; the listener side must cope either way.
    try:
        if data:
            await stream.send_all(data)
        await stream.aclose()
    except trio.BrokenResourceError:
        pass


@settings(max_examples=1000, deadline=None)
@given(data=st.binary(max_size=3000), authenticated=st.booleans())
async def test_random_bytes_end_in_a_logged_drop(data, authenticated):
    with collect_wire_logs() as logged:
        reason = await drive(data, authenticated)
    assert reason
    assert any(reason in message for message in logged), (reason, logged)
