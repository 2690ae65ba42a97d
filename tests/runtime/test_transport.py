import logging
import random

import nacl.signing
import pytest
import trio
import trio.testing

from gossipnode.config import WireConfig
from gossipnode.identity import Identity
from gossipnode.runtime.listener import serve
from gossipnode.runtime.transport import (
    ConnectionClosed,
    HandshakeFailed,
    TransportStatus,
    connect,
    establish,
)
from gossipnode.wire.channel import TAG_BYTES
from gossipnode.wire.handshake import PROTOCOL_VERSIONS, Handshake
from gossipnode.wire.messages import MessageRegistry
from tests.wire.samples import Blob, Item, sample_batch, sample_registry

SECRET = b"s" * 32
ALICE = Identity(nacl.signing.SigningKey(b"a" * 32))
BOB = Identity(nacl.signing.SigningKey(b"b" * 32))
REGISTRY = sample_registry()
CONFIG = WireConfig(handshake_timeout_s=2.0)
# Every wait in these tests is bounded by this; none is expected to come near it.
TEST_TIMEOUT_S = 10


async def memory_pair(config=CONFIG):
    left_stream, right_stream = trio.testing.memory_stream_pair()
    left = Handshake.initiator(ALICE, (SECRET,), frame_bytes_max=config.frame_bytes_max)
    right = Handshake.responder(BOB, (SECRET,), frame_bytes_max=config.frame_bytes_max)
    connections = {}

    async def run(name, stream, handshake):
        connections[name] = await establish(stream, handshake, registry=REGISTRY, remote=name)

    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "alice", left_stream, left)
            nursery.start_soon(run, "bob", right_stream, right)
    return connections["alice"], connections["bob"]


async def test_messages_cross_both_ways_over_memory_streams():
    alice, bob = await memory_pair()
    assert alice.peer_id == BOB.node_id
    assert bob.peer_id == ALICE.node_id
    with trio.fail_after(TEST_TIMEOUT_S):
        await alice.send(sample_batch())
        await alice.send(Blob(b"x" * 100_000))
        assert await bob.receive() == sample_batch()
        assert await bob.receive() == Blob(b"x" * 100_000)
        await bob.send(Item("back", 1, 0.0, False, None))
        assert await alice.receive() == Item("back", 1, 0.0, False, None)
        await alice.aclose()
        with pytest.raises(ConnectionClosed, match="peer closed the connection"):
            await bob.receive()


async def raw_write(connection, data):
    """Write bytes under the channel, as a misbehaving peer would."""
    await connection._stream.send_all(data)


def sealed(connection, payload):
    return connection._channel.seal(payload)


def flipped(frame, position):
    frame = bytearray(frame)
    frame[position] ^= 0x01
    return bytes(frame)


BAD_FRAMES = {
    "tampered frame": (
        lambda c: flipped(sealed(c, REGISTRY.encode(Blob(b"pay"))), -3),
        "failed authentication",
    ),
    "replayed frame": (
        lambda c: (lambda f: f + f)(sealed(c, REGISTRY.encode(Blob(b"pay")))),
        "frame 1 failed authentication",
    ),
    "oversized frame": (lambda c: b"\xff\xff\xff\xff", "over the limit"),
    "deep nesting": (lambda c: sealed(c, b"\x82\x03" + b"\x81" * 40 + b"\x00"), "depth"),
    "indefinite length": (lambda c: sealed(c, b"\x9f\x03\x40\xff"), "indefinite length"),
    "duplicate keys": (lambda c: sealed(c, b"\xa2\x61a\x01\x61a\x02"), "Duplicate map key"),
    "builtin tag": (lambda c: sealed(c, b"\x82\x03\xd8\x23\x61a"), "CBOR tag 35"),
    "unknown tag": (lambda c: sealed(c, b"\x82\x03\xd9\x27\x0f\x00"), "CBOR tag 9999"),
    "trailing bytes": (lambda c: sealed(c, b"\x82\x03\x41x\x00"), "trailing bytes"),
    "non-canonical": (lambda c: sealed(c, b"\x82\x18\x03\x41x"), "canonical"),
    "outside the schema": (lambda c: sealed(c, b"\x82\x03\x61x"), "Blob.data: expected bytes"),
    "truncated stream": (lambda c: sealed(c, REGISTRY.encode(Blob(b"pay")))[:-5], "mid-frame"),
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
async def test_a_bad_frame_drops_the_connection_with_a_logged_reason(name, caplog):
    make, reason = BAD_FRAMES[name]
    alice, bob = await memory_pair()
    with trio.fail_after(TEST_TIMEOUT_S):
        if name == "replayed frame":
            frame = make(alice)
            await raw_write(alice, frame)
            assert await bob.receive() == Blob(b"pay")
        else:
            await raw_write(alice, make(alice))
        if name == "truncated stream":
            await alice._stream.aclose()
        with pytest.raises(ConnectionClosed) as caught:
            await bob.receive()
    assert reason in caught.value.reason
    assert bob.close_reason == caught.value.reason
    dropped = [r for r in caplog.records if r.name == "gossipnode.wire" and "dropped" in r.message]
    assert any(reason in r.getMessage() for r in dropped)
    with pytest.raises(ConnectionClosed):
        await bob.send(Blob(b"after"))


async def test_sending_over_the_frame_limit_is_our_error():
    config = WireConfig(frame_bytes_max=1000)
    alice, _ = await memory_pair(config)
    # Random bytes: a compressible payload would go deflated and fit.
    with pytest.raises(Exception, match="over the limit"):
        await alice.send(Blob(random.Random(0).randbytes(1000 - TAG_BYTES)))


async def exchange(connection, message):
    await connection.send(message)
    return await connection.receive()


async def echo(connection):
    while True:
        await connection.send(await connection.receive())


@pytest.fixture
async def listener(nursery):
    status = TransportStatus()
    address = await nursery.start(
        lambda task_status: serve(
            ("127.0.0.1", 0),
            BOB,
            (SECRET, b"o" * 32),
            CONFIG,
            echo,
            registry=REGISTRY,
            status=status,
            task_status=task_status,
        )
    )
    return address, status


async def test_a_real_peer_talks_over_loopback_tcp(listener):
    address, status = listener
    with trio.fail_after(TEST_TIMEOUT_S):
        connection = await connect(
            address, ALICE, (SECRET,), CONFIG, expected_peer=BOB.node_id, registry=REGISTRY
        )
        assert connection.peer_id == BOB.node_id
        assert connection.version == PROTOCOL_VERSIONS[-1]
        for message in (sample_batch(), Blob(b"y" * 300_000), Item("i", 0, 1.5, True, b"")):
            await connection.send(message)
            assert await connection.receive() == message
        await connection.aclose()
    assert status.authenticated == 1


async def test_the_old_secret_still_connects_during_rotation(listener):
    address, _ = listener
    with trio.fail_after(TEST_TIMEOUT_S):
        connection = await connect(address, ALICE, (b"o" * 32,), CONFIG, registry=REGISTRY)
        await connection.send(Blob(b"z"))
        assert await connection.receive() == Blob(b"z")
        await connection.aclose()


async def test_a_wrong_secret_is_reported_on_both_sides(listener, caplog):
    address, status = listener
    with trio.fail_after(TEST_TIMEOUT_S), pytest.raises(HandshakeFailed) as caught:
        await connect(address, ALICE, (b"w" * 32,), CONFIG, registry=REGISTRY)
    assert "wrong cluster secret" in caught.value.reason
    with trio.fail_after(TEST_TIMEOUT_S):
        await trio.testing.wait_all_tasks_blocked()  # the listener has finished with it
    assert "wrong cluster secret" in status.recent_drops[-1][1]
    assert sum("wrong cluster secret" in r.getMessage() for r in caplog.records) >= 2


async def test_no_common_version_is_reported_on_both_sides(listener):
    address, status = listener
    client_status = TransportStatus()
    current = PROTOCOL_VERSIONS[-1]  # the listener speaks only this one
    newer = current + 1
    with trio.fail_after(TEST_TIMEOUT_S), pytest.raises(HandshakeFailed):
        await connect(
            address,
            ALICE,
            (SECRET,),
            CONFIG,
            registry=REGISTRY,
            versions=(newer, newer + 1),
            status=client_status,
        )
    ours, theirs = f"{newer}-{newer + 1}", f"{current}-{current}"
    assert f"no common protocol version: ours {ours}, theirs {theirs}" in (
        client_status.recent_drops[-1][1]
    )
    with trio.fail_after(TEST_TIMEOUT_S):
        await trio.testing.wait_all_tasks_blocked()  # the listener has finished with it
    assert f"no common protocol version: ours {theirs}, theirs {ours}" in status.recent_drops[-1][1]


async def test_a_forged_identity_is_dropped_by_the_listener(listener):
    address, status = listener

    class Impostor:
        node_id = ALICE.node_id

        def sign(self, message):
            return BOB.sign(message)

    with trio.fail_after(TEST_TIMEOUT_S):
        connection = await connect(address, Impostor(), (SECRET,), CONFIG, registry=REGISTRY)
        # The initiator finishes first; the listener refuses it and closes.
        with pytest.raises(ConnectionClosed):
            await exchange(connection, Blob(b"x"))
    assert any("bad signature" in reason for _, reason in status.recent_drops)
    assert status.authenticated == 0


async def test_the_listener_survives_garbage_and_serves_the_next_peer(listener):
    address, status = listener
    with trio.fail_after(TEST_TIMEOUT_S):
        for garbage in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x05hello", b"GET / HTTP/1.0\r\n\r\n"):
            stream = await trio.open_tcp_stream(*address)
            await stream.send_all(garbage)
            assert await stream.receive_some(100) in (b"",)  # closed, nothing disclosed
            await stream.aclose()
        connection = await connect(address, ALICE, (SECRET,), CONFIG, registry=REGISTRY)
        await connection.send(Blob(b"still here"))
        assert await connection.receive() == Blob(b"still here")
        await connection.aclose()
    assert status.handshakes_failed == 3


async def test_the_per_peer_cap_closes_the_idlest_connection(nursery):
    """A peer over its cap keeps its newest connection (it may be reconnecting after a
    blip that left the old one half dead): the idlest one is closed."""
    status = TransportStatus()
    config = WireConfig(connections_per_peer_max=1)
    address = await nursery.start(
        lambda task_status: serve(
            ("127.0.0.1", 0),
            BOB,
            (SECRET,),
            config,
            echo,
            registry=REGISTRY,
            status=status,
            task_status=task_status,
        )
    )
    with trio.fail_after(TEST_TIMEOUT_S):
        first = await connect(address, ALICE, (SECRET,), config, registry=REGISTRY)
        await first.send(Blob(b"1"))
        assert await first.receive() == Blob(b"1")
        second = await connect(address, ALICE, (SECRET,), config, registry=REGISTRY)
        await second.send(Blob(b"2"))
        assert await second.receive() == Blob(b"2")
        with pytest.raises(ConnectionClosed):
            await first.receive()
        await first.aclose()
        await second.aclose()
    assert status.over_peer_limit == 1
    assert "connections_per_peer_max" in status.recent_drops[-1][1]


async def test_an_idle_connection_is_dropped_at_the_handshake_timeout(nursery):
    status = TransportStatus()
    config = WireConfig(handshake_timeout_s=0.2)
    address = await nursery.start(
        lambda task_status: serve(
            ("127.0.0.1", 0),
            BOB,
            (SECRET,),
            config,
            echo,
            registry=REGISTRY,
            status=status,
            task_status=task_status,
        )
    )
    with trio.fail_after(TEST_TIMEOUT_S):
        stream = await trio.open_tcp_stream(*address)
        assert await stream.receive_some(100) == b""  # the listener hung up on us
        await stream.aclose()
    assert status.timed_out == 1
    assert "handshake timeout" in status.recent_drops[-1][1]


async def test_connect_to_a_closed_port_fails_cleanly():
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with trio.fail_after(TEST_TIMEOUT_S), pytest.raises(HandshakeFailed, match="cannot connect"):
        await connect(("127.0.0.1", port), ALICE, (SECRET,), CONFIG, registry=MessageRegistry())


@pytest.fixture(autouse=True)
def _capture_wire_logs(caplog):
    caplog.set_level(logging.INFO, logger="gossipnode.wire")


async def test_the_configured_cbor_depth_limit_is_enforced(nursery):
    status = TransportStatus()
    config = WireConfig(cbor_depth_max=3)
    address = await nursery.start(
        lambda task_status: serve(
            ("127.0.0.1", 0),
            BOB,
            (SECRET,),
            config,
            echo,
            registry=REGISTRY,
            status=status,
            task_status=task_status,
        )
    )
    with trio.fail_after(TEST_TIMEOUT_S):
        connection = await connect(address, ALICE, (SECRET,), config, registry=REGISTRY)
        assert await exchange(connection, Blob(b"flat")) == Blob(b"flat")
        # A Batch of records nests four levels: envelope, records, record, version.
        with pytest.raises(ConnectionClosed):
            await exchange(connection, sample_batch())
        await trio.testing.wait_all_tasks_blocked()
    assert "nesting depth (3) exceeded" in status.recent_drops[-1][1]
