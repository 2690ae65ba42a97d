"""Authenticated peers' floods are bounded: connections (per identity and in all, the idlest
closed first, live members' last), partial frames (a shared budget), oversized small
messages (refused by their declared type and size), and drop logging (a count per reason
per interval)."""

import logging
import os
import zlib

import nacl.signing
import pytest
import trio

from gossipnode.config import WireConfig
from gossipnode.core.membership import Gossip
from gossipnode.identity import Identity
from gossipnode.runtime import drops, peer_connection
from gossipnode.runtime.listener import serve
from gossipnode.runtime.transport import (
    ConnectionClosed,
    HandshakeFailed,
    TransportStatus,
    connect,
)
from gossipnode.wire.deflate_dictionary import DICTIONARY
from gossipnode.wire.peer_messages import PEER_MESSAGES
from tests.wire.samples import Blob, sample_registry

SECRET = b"s" * 32
BOB = Identity(nacl.signing.SigningKey(b"b" * 32))
REGISTRY = sample_registry()
# Every wait in these tests is bounded by this; none is expected to come near it.
TEST_TIMEOUT_S = 10


def fresh_identity(number: int) -> Identity:
    return Identity(nacl.signing.SigningKey(number.to_bytes(4, "big") * 8))


async def echo(connection):
    while True:
        await connection.send(await connection.receive())


async def start(nursery, config, status, registry=REGISTRY, handler=echo, **options):
    return await nursery.start(
        lambda task_status: serve(("127.0.0.1", 0), BOB, (SECRET,), config, handler,
                                  registry=registry, status=status, task_status=task_status,
                                  **options)
    )  # fmt: skip


async def closed_by_listener(connection) -> bool:
    """Whether the listener closed `connection` (it sends nothing unasked: any end is that)."""
    with trio.move_on_after(0.2):
        try:
            await connection.receive()
        except ConnectionClosed:
            return True
    return False


async def test_fresh_identities_cannot_hold_more_than_connections_max(nursery):
    status = TransportStatus()
    config = WireConfig(connections_max=4, handshake_timeout_s=2.0)
    address = await start(nursery, config, status)
    with trio.fail_after(TEST_TIMEOUT_S):
        member = await connect(address, fresh_identity(1), (SECRET,), config, registry=REGISTRY)
        flood = []
        for number in range(2, 12):
            identity = fresh_identity(number)
            flood.append(await connect(address, identity, (SECRET,), config, registry=REGISTRY))
            await member.send(Blob(b"still here"))  # the real member keeps talking
            assert await member.receive() == Blob(b"still here")
        closed = 0
        for connection in flood:
            with trio.move_on_after(0.2):
                try:
                    await connection.receive()
                except ConnectionClosed:
                    closed += 1
        assert closed >= len(flood) - 3  # at most connections_max - 1 idle ones survive
        await member.send(Blob(b"after"))
        assert await member.receive() == Blob(b"after")
        for connection in [member, *flood]:
            await connection.aclose()
    assert status.over_connection_limit >= 7
    assert "wire.connections_max" in status.recent_drops[-1][1]


async def test_a_flood_of_fresh_identities_spares_the_members_idle_connections(nursery):
    """Two members connect first and then say nothing (a member may be quiet for about a
    probe interval): theirs are the idlest connections. Ten fresh identities follow, each
    over `connections_max`: each closes the idlest non-member's connection, so the oldest
    eight of the flood go and the members' stay (listener.py rule 3)."""
    status = TransportStatus()
    config = WireConfig(connections_max=4, handshake_timeout_s=2.0)
    members = {fresh_identity(1).node_id, fresh_identity(2).node_id}
    address = await start(nursery, config, status, is_member=members.__contains__)
    quiet, flood = [], []
    try:
        with trio.fail_after(TEST_TIMEOUT_S):
            quiet.extend([await connect(address, fresh_identity(number), (SECRET,), config,
                                        registry=REGISTRY) for number in (1, 2)])
            for number in range(10, 20):
                flood.append(await connect(address, fresh_identity(number), (SECRET,), config,
                                           registry=REGISTRY))
                await trio.sleep(0.01)  # each newer, so less idle, than the one before
            assert [await closed_by_listener(c) for c in flood] == [True] * 8 + [False] * 2
            assert [await closed_by_listener(c) for c in quiet] == [False, False]
            for member in quiet:  # and they still carry messages
                await member.send(Blob(b"still a member"))
                assert await member.receive() == Blob(b"still a member")
    finally:
        for connection in quiet + flood:
            await connection.aclose()
    assert status.over_connection_limit == 8


async def test_when_every_connection_is_a_members_the_idlest_goes(nursery):
    status = TransportStatus()
    config = WireConfig(connections_max=3, handshake_timeout_s=2.0)
    address = await start(nursery, config, status, is_member=lambda node_id: True)
    connections = []
    try:
        with trio.fail_after(TEST_TIMEOUT_S):
            for number in (30, 31, 32):
                connections.append(await connect(address, fresh_identity(number), (SECRET,),
                                                 config, registry=REGISTRY))
                await trio.sleep(0.01)
            await connections[0].send(Blob(b"busy"))  # the oldest is busy: the second idlest
            assert await connections[0].receive() == Blob(b"busy")
            connections.append(await connect(address, fresh_identity(33), (SECRET,), config,
                                             registry=REGISTRY))
            closed = [await closed_by_listener(c) for c in connections]
            assert closed == [False, True, False, False]
    finally:
        for connection in connections:
            await connection.aclose()
    assert status.over_connection_limit == 1


async def test_partial_frames_count_against_a_shared_budget(nursery, monkeypatch):
    monkeypatch.setattr(peer_connection, "BUFFERED_BYTES_MAX", 256 * 1024)
    status = TransportStatus()
    config = WireConfig(handshake_timeout_s=2.0)
    address = await start(nursery, config, status)
    with trio.fail_after(TEST_TIMEOUT_S):
        holders = [
            await connect(address, fresh_identity(100 + n), (SECRET,), config, registry=REGISTRY)
            for n in range(8)
        ]
        for holder in holders:  # the first 64 KiB of a 4 MiB frame each
            frame = holder._channel.seal(REGISTRY.encode(Blob(os.urandom(4 * 1024 * 1024 - 64))))
            await holder._stream.send_all(frame[: 64 * 1024])
        await trio.sleep(0.3)
        assert status.buffered_bytes <= 256 * 1024
        assert status.over_buffer_budget >= 4
        for holder in holders:
            await holder.aclose()
        await trio.sleep(0.3)
    assert status.buffered_bytes == 0  # back to its baseline


@pytest.mark.parametrize("deflated", [False, True])
async def test_an_oversized_membership_message_is_refused_before_decoding(nursery, deflated):
    status = TransportStatus()
    config = WireConfig(handshake_timeout_s=2.0)
    address = await start(nursery, config, status, registry=PEER_MESSAGES)
    with trio.fail_after(TEST_TIMEOUT_S):
        sender = await connect(address, fresh_identity(200), (SECRET,), config)
        gossip_id = PEER_MESSAGES.type_id(Gossip)
        # A Gossip of 2.7 MB: an array head, the type id, then a huge byte string.
        body = b"\x82" + bytes([gossip_id]) + b"\x5a" + (2_700_000).to_bytes(4, "big")
        message = body + b"\x00" * 2_700_000
        # One frame bundling it (wire/peer_frames.py): mode, an array of one byte string.
        bundle = b"\x81\x5a" + len(message).to_bytes(4, "big") + message
        if deflated:  # 2.7 MB of zeros in a few KiB: the size is checked once inflated
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=DICTIONARY)
            payload = b"\x01" + (compressor.compress(bundle)
                                 + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        else:
            payload = b"\x00" + bundle
        await sender._stream.send_all(sender._channel.seal(payload))
        with pytest.raises(ConnectionClosed):
            await sender.receive()
        await sender.aclose()
    assert status.over_message_size == 1


async def test_drop_logging_is_a_count_per_reason_per_interval(nursery, caplog):
    status = TransportStatus()
    config = WireConfig(handshake_timeout_s=2.0)
    address = await start(nursery, config, status)
    caplog.set_level(logging.WARNING, logger="gossipnode.wire")
    with trio.fail_after(TEST_TIMEOUT_S):
        for _ in range(60):
            with pytest.raises(HandshakeFailed):
                await connect(address, fresh_identity(300), (b"w" * 32,), config,
                              registry=REGISTRY)  # fmt: skip
    await trio.sleep(0.1)
    lines = [r for r in caplog.records if r.name == "gossipnode.wire"]
    # The dialling side logs its own failures too (status None there); the listener's own
    # lines are capped per reason.
    listener_lines = [r for r in lines if "wrong cluster secret (the peer" in r.getMessage()]
    assert len(listener_lines) <= drops.DROP_LOG_LINES_MAX
    assert len(status.recent_drops) > drops.DROP_LOG_LINES_MAX  # still all recorded
