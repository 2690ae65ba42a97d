"""A listener under a flood of garbage and idle connections still serves a real peer."""

import contextlib
import random
import resource

import nacl.signing
import trio
import trio.testing

from gossipnode.config import WireConfig
from gossipnode.identity import Identity
from gossipnode.runtime.listener import _Gate, serve
from gossipnode.runtime.transport import TransportStatus, connect
from gossipnode.wire.handshake import Handshake
from tests.wire.samples import Blob, sample_registry

SECRET = b"s" * 32
ALICE = Identity(nacl.signing.SigningKey(b"a" * 32))
BOB = Identity(nacl.signing.SigningKey(b"b" * 32))
REGISTRY = sample_registry()
FLOOD_CONNECTIONS = 1000
# Connections opened at once while flooding; the listen backlog takes the rest.
FLOOD_BATCH = 100
# Client and server ends of every flood connection, plus slack for the test itself.
FILES_NEEDED = 2 * FLOOD_CONNECTIONS + 200
TEST_TIMEOUT_S = 60


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < FILES_NEEDED:
        wanted = FILES_NEEDED if hard == resource.RLIM_INFINITY else min(FILES_NEEDED, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def flood_payload(index, rng):
    """Idle, random garbage, an oversized length, or a stalled half of a real hello."""
    kind = index % 4
    if kind == 0:
        return b""
    if kind == 1:
        return rng.randbytes(rng.randrange(1, 2000))
    if kind == 2:
        return b"\xff\xff\xff\xff"
    hello = Handshake.initiator(ALICE, (SECRET,), frame_bytes_max=1024).data_to_send()
    return hello[: len(hello) // 2]


async def test_a_flooded_listener_still_completes_a_real_handshake(nursery):
    raise_file_limit()
    status = TransportStatus()
    config = WireConfig()  # the defaults: 5 s handshake timeout, 64 unauthenticated
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
    rng = random.Random(4)
    flood = []

    async def open_one(index):
        stream = await trio.open_tcp_stream(*address)
        flood.append(stream)
        payload = flood_payload(index, rng)
        if payload:
            # The listener may have dropped it already: that is the point.
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all(payload)

    with trio.fail_after(TEST_TIMEOUT_S):
        try:
            for start in range(0, FLOOD_CONNECTIONS, FLOOD_BATCH):
                async with trio.open_nursery() as batch:
                    for index in range(start, start + FLOOD_BATCH):
                        batch.start_soon(open_one, index)
            await trio.testing.wait_all_tasks_blocked()
            # Every flood connection is still open on our side, the idle ones well within
            # the handshake timeout, and a real peer still gets through.
            assert len(flood) == FLOOD_CONNECTIONS
            connection = await connect(
                address, ALICE, (SECRET,), config, expected_peer=BOB.node_id, registry=REGISTRY
            )
            await connection.send(Blob(b"through the flood"))
            assert await connection.receive() == Blob(b"through the flood")
            await connection.aclose()
        finally:
            for stream in flood:
                await stream.aclose()
    assert status.accepted == FLOOD_CONNECTIONS + 1
    assert status.authenticated == 1
    assert status.evicted > 0
    assert status.handshakes_failed > 0


async def echo(connection):
    while True:
        await connection.send(await connection.receive())


async def test_eviction_falls_on_the_busiest_source_then_the_oldest():
    gate = _Gate(WireConfig(unauthenticated_connections_max=3), TransportStatus())
    first_a = gate.admit("10.0.0.1")
    first_b = gate.admit("10.0.0.2")
    second_a = gate.admit("10.0.0.1")
    first_c = gate.admit("10.0.0.3")  # full: 10.0.0.1 holds two, so its oldest goes
    assert gate.evicted == {first_a}
    assert list(gate.pending) == [first_b, second_a, first_c]
    first_d = gate.admit("10.0.0.4")  # full, one each: the oldest goes
    assert gate.evicted == {first_a, first_b}
    assert list(gate.pending) == [second_a, first_c, first_d]
    assert all(gate.pending[t][1].cancel_called is False for t in gate.pending)
