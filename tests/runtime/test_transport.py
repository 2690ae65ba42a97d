import logging
import random
import zlib

import cbor2
import nacl.signing
import pytest
import trio
import trio.testing

from gossipnode.config import WireConfig
from gossipnode.identity import Identity
from gossipnode.runtime.listener import serve
from gossipnode.runtime.transport import (
    FRAME_OVERHEAD_BYTES,
    ConnectionClosed,
    HandshakeFailed,
    TransportStatus,
    connect,
    establish,
)
from gossipnode.wire.channel import TAG_BYTES
from gossipnode.wire.deflate_dictionary import DICTIONARY
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


def plain(*messages):
    """A frame payload in mode 0 (no compression) bundling `messages`, each already bytes:
    built here by hand (wire/peer_frames.py), not by the module under test."""
    return b"\x00" + cbor2.dumps(list(messages), canonical=True)


def deflated(body, level=6):
    """A frame payload in mode 1: `body` deflated as the first frame of a connection."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=DICTIONARY)
    return b"\x01" + (compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


PAY = REGISTRY.encode(Blob(b"pay"))
BAD_FRAMES = {
    "tampered frame": (lambda c: flipped(sealed(c, plain(PAY)), -3), "failed authentication"),
    "replayed frame": (
        lambda c: (lambda f: f + f)(sealed(c, plain(PAY))),
        "frame 1 failed authentication",
    ),
    "oversized frame": (lambda c: b"\xff\xff\xff\xff", "over the limit"),
    "deep nesting": (lambda c: sealed(c, plain(b"\x82\x03" + b"\x81" * 40 + b"\x00")), "depth"),
    "indefinite length": (lambda c: sealed(c, plain(b"\x9f\x03\x40\xff")), "indefinite length"),
    "duplicate keys": (lambda c: sealed(c, plain(b"\xa2\x61a\x01\x61a\x02")),
                       "Duplicate map key"),
    "builtin tag": (lambda c: sealed(c, plain(b"\x82\x03\xd8\x23\x61a")), "CBOR tag 35"),
    "unknown tag": (lambda c: sealed(c, plain(b"\x82\x03\xd9\x27\x0f\x00")), "CBOR tag 9999"),
    "trailing bytes": (lambda c: sealed(c, plain(b"\x82\x03\x41x\x00")), "trailing bytes"),
    "non-canonical": (lambda c: sealed(c, plain(b"\x82\x18\x03\x41x")), "canonical"),
    "outside the schema": (lambda c: sealed(c, plain(b"\x82\x03\x61x")),
                           "Blob.data: expected bytes"),
    "truncated stream": (lambda c: sealed(c, plain(PAY))[:-5], "mid-frame"),
    # The frame around the messages (protocol version 4).
    "unknown mode": (lambda c: sealed(c, b"\x07" + plain(PAY)[1:]), "unknown frame mode 7"),
    "empty frame": (lambda c: sealed(c, b""), "an empty frame"),
    "empty bundle": (lambda c: sealed(c, plain()), "array of 1 to"),
    "bundle not of bytes": (lambda c: sealed(c, b"\x00" + cbor2.dumps([1])), "byte strings"),
    "bundle of a v3 message": (lambda c: sealed(c, b"\x00" + PAY), "byte strings"),
    "bundle not canonical": (lambda c: sealed(c, b"\x00\x9f" + cbor2.dumps(PAY) + b"\xff"),
                             "indefinite"),
    "deflate garbage": (lambda c: sealed(c, b"\x01\xff\xff\xff\xff"), "malformed"),
    "deflate that ends": (
        lambda c: sealed(c, b"\x01" + zlib.compressobj(6, zlib.DEFLATED, -15, zdict=DICTIONARY)
                         .compress(plain(PAY)[1:]) + b"\x03\x00"), "ends the stream"),
    "zip bomb": (lambda c: sealed(c, deflated(bytes(8 * 1024 * 1024), 9)), "more than"),
    "deflated bad message": (lambda c: sealed(c, deflated(plain(b"\x82\x03\x61x")[1:])),
                             "Blob.data: expected bytes"),
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
    # Random bytes: what deflate cannot shrink must fit a frame as it is.
    with pytest.raises(Exception, match="does not fit a frame"):
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
    older = current - 1
    with trio.fail_after(TEST_TIMEOUT_S), pytest.raises(HandshakeFailed):
        await connect(
            address,
            ALICE,
            (SECRET,),
            CONFIG,
            registry=REGISTRY,
            versions=(older,),  # a peer of the previous release
            status=client_status,
        )
    ours, theirs = f"{older}-{older}", f"{current}-{current}"
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


async def test_the_counters_add_up_to_every_byte_on_the_stream():
    """Handshake bytes, frames and the bytes shared among bundled messages sum to what
    crossed the streams (counted below the transport, by wrappers of our own)."""
    left_stream, right_stream = trio.testing.memory_stream_pair()
    carried = [0]

    def count(stream):
        send_all = stream.send_stream.send_all

        async def counting_send_all(data):
            carried[0] += len(data)
            await send_all(data)

        stream.send_stream.send_all = counting_send_all

    count(left_stream)
    count(right_stream)
    statuses = {"alice": TransportStatus(), "bob": TransportStatus()}
    handshakes = {
        "alice": Handshake.initiator(ALICE, (SECRET,), frame_bytes_max=CONFIG.frame_bytes_max),
        "bob": Handshake.responder(BOB, (SECRET,), frame_bytes_max=CONFIG.frame_bytes_max),
    }
    connections = {}

    async def run(name, stream):
        connections[name] = await establish(stream, handshakes[name], registry=REGISTRY,
                                            remote=name, status=statuses[name])

    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "alice", left_stream)
            nursery.start_soon(run, "bob", right_stream)
        messages = [Item("i", n, 0.5, True, None) for n in range(20)] + [sample_batch()]
        await connections["alice"].send_many(messages)
        assert [await connections["bob"].receive() for _ in messages] == messages
        await connections["bob"].send(Blob(b"ok"))
        assert await connections["alice"].receive() == Blob(b"ok")
    alice, bob = statuses["alice"], statuses["bob"]
    assert alice.frames_sent == bob.frames_received == 1  # one bundle
    assert set(alice.bytes_sent) == {"Item", "Batch"}
    assert alice.bytes_sent == bob.bytes_received and bob.bytes_sent == alice.bytes_received
    assert alice.handshake_bytes == bob.handshake_bytes > 0  # both directions, both sides
    frames = alice.frames_sent + bob.frames_sent
    assert carried[0] == (alice.handshake_bytes + FRAME_OVERHEAD_BYTES * frames
                          + sum(alice.bytes_sent.values()) + sum(bob.bytes_sent.values()))
