"""A peer that misbehaves on an inbound connection is cut off both ways: that connection,
its other connections to us, and ours to it (two real agents on 127.0.0.1, one Trio run).
The two share one connection, dialled by b, which joins through a (runtime/links.py rule
7): a's link to b sends over it.

On Trio's MockClock (autojump), which is sound for agents sharing one Trio run over
loopback (tests/runtime/test_filtering.py says why).
"""

import cbor2
import pytest
import trio

from gossipnode.config import NodeConfig
from gossipnode.core.reconcile_messages import ReconcileOpen
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push
from gossipnode.identity import create_identity, format_node_id, generate_secret
from gossipnode.runtime.agent import Agent
from gossipnode.runtime.status import status
from gossipnode.runtime.transport import ConnectionClosed, connect
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import encode_value
from tests.ports import free_ports

pytestmark = pytest.mark.slow

# Every wait polls (on the mock clock) at most this long before it fails.
WAIT_S = 60.0


async def wait_until(condition, what):
    with trio.move_on_after(WAIT_S):
        while not condition():  # noqa: ASYNC110 - polling agents' state, no event to await
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def send_in_one_write(connection, *messages):
    """Seal several messages and write them at once, so that they arrive in one read and
    the receiver holds the later ones buffered while it handles the first. Each goes in a
    frame of its own, in mode 0 (uncompressed: wire/peer_frames.py), built here by hand."""
    sealed = b"".join(
        connection._channel.seal(
            b"\x00" + cbor2.dumps([connection._registry.encode(message)], canonical=True))
        for message in messages)
    await connection._stream.send_all(sealed)


def make_agents(tmp_path):
    """Agents a and b (b joins through a), with b's identity and the cluster secret."""
    ports = free_ports(2)
    secret = generate_secret()
    agents, identities = [], []
    for index in range(2):
        directory = tmp_path / f"n{index}"
        directory.mkdir()
        identities.append(create_identity(directory / "identity.key"))
        config = NodeConfig(name=f"n{index}", data_dir=directory,
                            listen=("127.0.0.1", ports[index]),
                            join=(("127.0.0.1", ports[0]),) if index else ())
        agents.append(Agent(config, identities[index], (secret,), SqliteStore(config.store_file)))
    return agents, identities[1], secret


async def start_linked(nursery, agents):
    """Run both agents until they know each other and share one connection: b dialled it
    (b's link to a), a serves it and its link to b sends over it. Returns (b's end, a's end)."""
    a, b = agents
    for agent in agents:
        await nursery.start(lambda agent=agent, **kw: agent.run(handle_signals=False, **kw))
    await wait_until(lambda: (
        all(sum(m.state == "alive" for m in x.core.members()) == 2 for x in agents)
        and a.disconnects.inbound_from(b.core.node_id)
        and a.links.connected()
    ), "two alive members linked")
    (a_end,) = a.disconnects.inbound_from(b.core.node_id)
    assert [link.connection for link in a.links._links.values()] == [a_end]
    (b_end,) = [link.connection for link in b.links._links.values()]
    assert not b.disconnects.inbound_from(a.core.node_id)  # b never had to be dialled
    return b_end, a_end


def misbehaviour(a, b_id):
    """A reconciliation of a node-local dataset (no member may ask for one), then a push
    that a must no longer take from b once it cut b off."""
    sneaked = Record("groups", "sneaked", encode_value({"members": []}),
                     Version(a.wall_ms(), 0, b_id))
    return ReconcileOpen(7, "mail_routes", b"\x00" * 16, b"\x00" * 32, 0), Push(1, (sneaked,))


async def test_a_peer_misbehaving_on_an_inbound_connection_is_cut_off_both_ways(
    tmp_path, autojump_clock
):
    agents, b_identity, secret = make_agents(tmp_path)
    a, b = agents
    b_id = b.core.node_id
    async with trio.open_nursery() as nursery:
        shared = await start_linked(nursery, agents)

        # b (its key, the cluster secret) opens one more connection to a and misbehaves.
        rogue = await connect(a.config.listen, b_identity, (secret,), a.config.wire)
        await wait_until(lambda: len(a.disconnects.inbound_from(b_id)) == 2,
                         "the extra connection being served")
        assert all(c.close_reason is None for c in shared)
        await send_in_one_write(rogue, *misbehaviour(a, b_id))

        async def drain():  # a may have sent over it first: its link takes the newest
            while True:
                await rogue.receive()

        with trio.fail_after(WAIT_S), pytest.raises(ConnectionClosed):
            await drain()  # a closed the misbehaving connection...
        # ...and the one a and b shared, both ends.
        await wait_until(lambda: all(c.close_reason is not None for c in shared),
                         "every other connection between a and b closed")
        assert a.store.get("groups", "sneaked") is None  # nothing after the cut was heard
        # a's link that sent over it is gone (a new one may already have dialled b).
        assert all(link.connection not in shared for link in a.links._links.values())

        cut = status(a)["disconnects"][-1]
        assert cut["peer"] == format_node_id(b_id)
        assert cut["address"] == b.config.listen[0] + f":{b.config.listen[1]}"
        assert "mail_routes" in cut["reason"]
        assert cut["connections_closed"] == 2  # the rogue and the shared one
        assert cut["age_s"] >= 0 and abs(cut["at"] - a.wall_ms() / 1000) < WAIT_S

        # A cut is not a ban: the two reconnect and stay members.
        await wait_until(lambda: (a.disconnects.inbound_from(b_id)
                                  or b.disconnects.inbound_from(a.core.node_id))
                         and all(sum(m.state == "alive" for m in x.core.members()) == 2
                                 for x in agents), "a and b linked again")
        await rogue.aclose()
        for agent in agents:
            agent.stop()


async def test_a_peer_misbehaving_on_the_link_it_dialled_is_cut_off_both_ways(
    tmp_path, autojump_clock
):
    agents, _, _ = make_agents(tmp_path)
    a, b = agents
    async with trio.open_nursery() as nursery:
        b_end, a_end = await start_linked(nursery, agents)
        # b misbehaves on the connection it dialled, which a's link also sends over.
        await send_in_one_write(b_end, *misbehaviour(a, b.core.node_id))
        await wait_until(lambda: b_end.close_reason is not None
                         and a_end.close_reason is not None, "both ends closed")
        assert a.store.get("groups", "sneaked") is None
        # a's link that sent over it is gone too (a new one may already have dialled b).
        assert all(link.connection is not a_end for link in a.links._links.values())
        assert status(a)["disconnects"][-1]["connections_closed"] == 1  # counted once
        for agent in agents:
            agent.stop()
