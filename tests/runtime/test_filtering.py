"""Per-recipient filtering across real agents on 127.0.0.1 (one Trio run, four agents).

Four members, three running WEP, one denied private keys by policy, R = 2. Every payload any
agent seals for a peer is captured (the plaintext handed to the secure channel), so the
containment assertion covers the wire itself, not only the stores.

The run is on Trio's MockClock with autojump: virtual time leaps only when every task is
blocked and no socket is ready. That is sound here because every agent lives in this one
Trio run and loopback delivers a send before it returns: a message in flight always leaves
a task runnable, so no timeout fires early; waits for timers (anti-entropy rounds, probes)
cost no real time.
"""

from pathlib import Path

import pytest
import trio

from gossipnode.config import NodeConfig, ReplicationConfig, TagsConfig
from gossipnode.identity import create_identity, generate_secret
from gossipnode.runtime import transport
from gossipnode.runtime.agent import Agent
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import encode_value
from gossipnode.wire.peer_messages import PEER_MESSAGES
from tests.ports import free_ports

pytestmark = pytest.mark.slow

SECRET_MARKER = b"-----PRIVATE-KEY-MATERIAL-%d-----"
# Every wait in this test polls at most this long before it fails.
WAIT_S = 60.0


@pytest.fixture
def sealed(monkeypatch):
    """Capture (peer id, plaintext payload) for every message any agent sends a peer."""
    captured = []
    original = transport.PeerConnection.send_many

    async def send_many(self, messages):
        captured.extend((self.peer_id, PEER_MESSAGES.encode(message), message)
                        for message in messages)
        await original(self, messages)

    monkeypatch.setattr(transport.PeerConnection, "send_many", send_many)
    return captured


def make_agents(tmp_path: Path, wep: list[bool]) -> list[Agent]:
    ports = free_ports(len(wep))
    secret = generate_secret()
    agents = []
    for index, runs_wep in enumerate(wep):
        directory = tmp_path / f"n{index}"
        directory.mkdir()
        identity = create_identity(directory / "identity.key")
        config = NodeConfig(
            name=f"n{index}", data_dir=directory, listen=("127.0.0.1", ports[index]),
            join=(("127.0.0.1", ports[0]),) if index else (),
            tags=TagsConfig(wep=runs_wep, private_keys=True),
            replication=ReplicationConfig(anti_entropy_interval_s=0.5),
        )
        store = SqliteStore(config.store_file)
        agents.append(Agent(config, identity, (secret,), store))
    return agents


def keys(agent, dataset):
    return {record.key for record in agent.store.scan(dataset)}


async def wait_until(condition, what):
    """Poll `condition` (the agents change state in other tasks) for at most WAIT_S."""
    with trio.move_on_after(WAIT_S):
        while not condition():  # noqa: ASYNC110 - polling stores, no event to await
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")


def put(agent, dataset, key, value):
    encoded = encode_value(value)
    return agent.input(lambda now: agent.core.put(dataset, key, encoded, now))


async def test_private_keys_mailboxes_and_local_data_reach_only_their_holders(tmp_path, sealed,
                                                                         autojump_clock):
    agents = make_agents(tmp_path, wep=[True, True, True, False])
    a, b, c, denied = agents
    async with trio.open_nursery() as nursery:
        for agent in agents:
            await nursery.start(lambda agent=agent, **kw: agent.run(handle_signals=False, **kw))
        await wait_until(lambda: all(
            sum(m.state == "alive" for m in agent.core.members()) == 4 for agent in agents
        ), "all members alive")
        denied_id = denied.core.node_id
        put(a, "cluster_policy", "private_keys/" + denied_id.hex(), {"allow": False})
        await wait_until(lambda: all(
            denied_id in agent.core.policy.private_keys_denied for agent in agents
        ), "the policy everywhere")

        # Private keys written on every member (the denied one refuses the write itself).
        for index, agent in enumerate(agents[:3]):
            put(agent, "private_keys", f"fpr{index}", {"secret": SECRET_MARKER % index})
        with pytest.raises(Exception, match="may not hold private keys"):
            put(denied, "private_keys", "fpr-denied", {"secret": b"x"})
        # Mailboxes with messages, written everywhere, the non-WEP member included.
        for m in range(12):
            writer = agents[m % 4]
            put(writer, "web_messenger", f"box{m}", {"owner": f"user{m}"})
            put(writer, "web_messenger", f"box{m}/msg1", {"text": f"hello {m}"})
        # Local settings on each member.
        for index, agent in enumerate(agents):
            put(agent, "mail_routes", "default", {"relay": f"smtp{index}.example.org"})

        await wait_until(lambda: all(
            keys(agent, "private_keys") == {"fpr0", "fpr1", "fpr2"} for agent in (a, b, c)
        ), "private keys on the eligible members")

        def placement_settled(wep_members):
            for m in range(12):
                holders = [x for x in agents if f"box{m}" in keys(x, "web_messenger")]
                if len(holders) != 2 or not all(x in wep_members for x in holders):
                    return False
                if not all(f"box{m}/msg1" in keys(x, "web_messenger") for x in holders):
                    return False
            return True

        await wait_until(lambda: placement_settled([a, b, c]), "every mailbox on 2 WEP members")

        # Turning WEP off on one member moves its mailboxes to the other two, losing nothing.
        a.input(lambda now: a.core.set_tags({"wep": "false"}, now))
        await wait_until(lambda: placement_settled([b, c]), "mailboxes moved off n0")
        for m in range(12):
            for holder in (b, c):
                assert f"box{m}/msg1" in keys(holder, "web_messenger")

        # A member that is later denied purges what it held, and gets nothing more.
        c_id = c.core.node_id
        put(a, "cluster_policy", "private_keys/" + c_id.hex(), {"allow": False})
        await wait_until(lambda: keys(c, "private_keys") == set(), "n2 purged its private keys")
        put(b, "private_keys", "fpr-late", {"secret": SECRET_MARKER % 9})
        await wait_until(lambda: "fpr-late" in keys(a, "private_keys"), "fpr-late on n0")
        await trio.sleep(2)  # several anti-entropy rounds
        assert keys(c, "private_keys") == set()

        for index, agent in enumerate(agents):
            routes = agent.store.scan("mail_routes")
            assert [r.key for r in routes] == ["default"]
            assert f"smtp{index}".encode() in routes[0].value
        for agent in agents:
            agent.stop()

    # Over the whole run, nothing with private key material was sealed for the denied member,
    # and nothing at all of the local datasets was sealed for anyone.
    for peer, payload, message in sealed:
        records = list(getattr(message, "records", ()))
        assert not any(r.dataset in ("mail_routes", "network") for r in records)
        if peer == denied_id:
            assert not any(r.dataset == "private_keys" for r in records)
            assert b"PRIVATE-KEY-MATERIAL" not in payload
    after_denial = [s for s in sealed if s[0] == c_id and b"MATERIAL-9" in s[1]]
    assert after_denial == []
    assert any(peer == denied_id for peer, _, _ in sealed)  # the capture saw its traffic

