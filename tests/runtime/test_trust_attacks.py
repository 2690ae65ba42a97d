"""The attacks of a compromised member, against real agents on 127.0.0.1 (one Trio run).

Two honest members hold every grant; `mallory` is admitted but granted nothing (its own tags
say no private keys, no WEP); `eve` holds the cluster secret but nobody admitted her. The
test speaks as mallory and eve through the project's own wire modules (runtime/transport.py,
the peer message registry) and sends what a compromised member would: forged policy and
grants, private keys under Alice's fingerprint, an unrelated certificate for Alice, secret
keys hidden in public datasets. Each ends refused, logged with the sender named, and
changes nothing on the honest members, and eve is not even a member of theirs (she waits in
their bounded pending sets). Every payload any agent seals for a peer is captured,
so "eve receives no record" covers the wire, not only her store.
"""

import logging

import nacl.signing
import pytest
import trio

from gossipnode.config import NodeConfig, ReplicationConfig, TagsConfig, WireConfig
from gossipnode.core.authority import signing_payload
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push
from gossipnode.identity import create_identity, generate_secret, short_id
from gossipnode.openpgp import consumer_value, generate_key, private_key_value, split_keys
from gossipnode.runtime import transport
from gossipnode.runtime.agent import Agent
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import encode_value
from tests.ports import free_ports

pytestmark = pytest.mark.slow

# Every wait in this test polls at most this long before it fails.
WAIT_S = 60.0
ALICE = split_keys(generate_key("Alice <alice@example.org>"))[0]
MALLORY_KEY = split_keys(generate_key("Mallory <mallory@example.org>"))[0]
ADMIN = nacl.signing.SigningKey.generate()
ADMIN_ID = bytes(ADMIN.verify_key)


@pytest.fixture
def sealed(monkeypatch):
    """(peer id, message) for every message any agent sends a peer."""
    captured = []
    original = transport.PeerConnection.send_many

    async def send_many(self, messages):
        captured.extend((self.peer_id, message) for message in messages)
        await original(self, messages)

    monkeypatch.setattr(transport.PeerConnection, "send_many", send_many)
    return captured


def make_agents(tmp_path, specs):
    ports = free_ports(len(specs))
    secret = generate_secret()
    agents = {}
    for index, (name, tags) in enumerate(specs):
        directory = tmp_path / name
        directory.mkdir()
        config = NodeConfig(
            name=name, data_dir=directory, listen=("127.0.0.1", ports[index]),
            join=(("127.0.0.1", ports[0]),) if index else (),
            tags=TagsConfig(**tags), admin_keys=(ADMIN_ID,),
            replication=ReplicationConfig(anti_entropy_interval_s=0.5),
        )
        identity = create_identity(directory / "identity.key")
        agents[name] = Agent(config, identity, (secret,), SqliteStore(config.store_file))
    return agents, secret


def signed(dataset, key, value, version, signing_key):
    encoded = None if value is None else encode_value(value)
    signature = signing_key.sign(signing_payload(dataset, key, version, encoded)).signature
    return Record(dataset, key, encoded, version, signature)


def admin_write(agent, key, value):
    """What the CLI does with --admin-key: sign, then hand the record to the agent."""
    version = Version(agent.wall_ms(), 0, ADMIN_ID)
    record = signed("cluster_policy", key, value, version, ADMIN)
    return agent.input(lambda now: agent.core.write_signed(record, now))


def put(agent, dataset, key, value):
    encoded = encode_value(value)
    return agent.input(lambda now: agent.core.put(dataset, key, encoded, now))


def keys(agent, dataset):
    return {record.key for record in agent.store.scan(dataset)}


async def wait_until(condition, what):
    with trio.move_on_after(WAIT_S):
        while not condition():  # noqa: ASYNC110 - polling stores, no event to await
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def push_as(identity, secret, target, records):
    """Speak as `identity` to `target` over the real transport, and wait until the target
    refused every record (its acknowledgement goes to the member's advertised address)."""
    def refused():
        # Per member (`peers`), or in all for one that is no member of the target's.
        status = target.core.status(target.clock())
        if all(p.node_id != identity.node_id for p in status.peers):
            return status.counters.get("records_refused", 0)
        return next(p.refused_from_peer for p in status.peers if p.node_id == identity.node_id)

    before = refused()
    connection = await transport.connect(target.listen_address, identity, (secret,),
                                         WireConfig(), expected_peer=target.identity.node_id)
    try:
        await connection.send(Push(424242, tuple(records)))
        await wait_until(
            lambda: refused() >= before + len(records),
            f"{target.config.name} to refuse {len(records)} records",
        )
    finally:
        await connection.aclose()
    return refused() - before


def secret_only(key, size=32):
    """A slice of the secret key that its public certificate does not contain."""
    for start in range(0, len(key.secret_key) - size):
        window = key.secret_key[start:start + size]
        if window not in key.public_cert:
            return window
    raise AssertionError("no secret-only bytes")


def snapshot(agent):
    return {dataset: {(r.key, r.version, r.value) for r in agent.store.scan(dataset)}
            for dataset in ("cluster_policy", "private_keys", "consumers", "groups",
                            "web_messenger")}


async def test_a_compromised_member_gets_and_changes_nothing_it_was_not_granted(
        tmp_path, sealed, caplog):
    caplog.set_level(logging.INFO)
    agents, secret = make_agents(tmp_path, [
        ("a", {"private_keys": True, "wep": True}),
        ("b", {"private_keys": True, "wep": True}),
        ("mallory", {"private_keys": False, "wep": False}),
        ("eve", {"private_keys": True, "wep": True}),
    ])
    a, b, mallory, eve = (agents[n] for n in ("a", "b", "mallory", "eve"))
    honest = (a, b)
    async with trio.open_nursery() as nursery:
        for agent in agents.values():
            await nursery.start(lambda agent=agent, **kw: agent.run(handle_signals=False, **kw))
        await wait_until(lambda: all(
            sum(m.state == "alive" for m in agent.core.members()) == 4 for agent in honest
        ), "every member alive")
        for agent, grants in ((a, {"admitted": True, "private_keys": True, "wep": True}),
                              (b, {"admitted": True, "private_keys": True, "wep": True}),
                              (mallory, {"admitted": True})):
            admin_write(a, "grant/" + agent.identity.node_id.hex(), grants)
        admin_write(a, "wep", {"replication": True, "replicas": 2})
        put(a, "consumers", ALICE.fingerprint, consumer_value(ALICE))
        put(a, "private_keys", ALICE.fingerprint, private_key_value(ALICE))
        for m in range(6):
            put(a, "web_messenger", f"box{m}", {"owner": f"user{m}"})
        put(eve, "groups", "from-eve", {"members": ["eve"]})
        await wait_until(lambda: all(
            keys(x, "private_keys") == {ALICE.fingerprint}
            and len(keys(x, "web_messenger")) == 6 and ALICE.fingerprint in keys(x, "consumers")
            for x in honest
        ), "the data on both honest members")
        await wait_until(lambda: ALICE.fingerprint in keys(mallory, "consumers"),
                         "public data on mallory")
        before = [snapshot(x) for x in honest]

        now_ms = a.wall_ms() + 1
        m_id, m_key = mallory.identity.node_id, mallory.identity.signing_key
        a_id = a.identity.node_id
        attacks = [
            # Forged policy and grants: its own key, the administrator's name, no signature.
            signed("cluster_policy", "grant/" + m_id.hex(),
                   {"admitted": True, "private_keys": True, "wep": True},
                   Version(now_ms, 0, m_id), m_key),
            signed("cluster_policy", "grant/" + a_id.hex(), {"admitted": False},
                   Version(now_ms, 0, ADMIN_ID), m_key),
            Record("cluster_policy", "wep", encode_value({"replication": True, "replicas": 1}),
                   Version(now_ms, 0, ADMIN_ID)),
            signed("cluster_policy", "private_keys/" + a_id.hex(), {"allow": False},
                   Version(now_ms, 0, m_id), m_key),
            # A private key under Alice's fingerprint: its own, and one posing as a's write.
            signed("private_keys", ALICE.fingerprint, private_key_value(MALLORY_KEY),
                   Version(now_ms, 0, m_id), m_key),
            signed("private_keys", ALICE.fingerprint, {"secret_key": MALLORY_KEY.secret_key},
                   Version(now_ms, 0, a_id), m_key),
            # An unrelated certificate as Alice's, and secret keys hidden in public data.
            Record("consumers", ALICE.fingerprint,
                   encode_value(consumer_value(MALLORY_KEY)), Version(now_ms, 0, m_id)),
            Record("groups", "leak-hex", encode_value({"n": MALLORY_KEY.secret_key.hex()}),
                   Version(now_ms, 0, m_id)),
            Record("consumers", "leak-junk", encode_value({"cert": b"\x00" +
                                                           MALLORY_KEY.secret_key}),
                   Version(now_ms, 0, m_id)),
        ]
        for target in honest:
            assert await push_as(mallory.identity, secret, target, attacks) == len(attacks)
        # eve, never admitted, pushes plain data.
        eve_record = Record("groups", "eve-was-here", encode_value({"m": []}),
                            Version(now_ms, 0, eve.identity.node_id))
        assert await push_as(eve.identity, secret, a, [eve_record]) == 1
        await trio.sleep(3)  # several anti-entropy rounds and retries
        assert [snapshot(x) for x in honest] == before
        for x in honest:
            assert not x.core.policy.granted(m_id, "private_keys")
            assert x.core.admitted(a_id) and not x.core.admitted(eve.identity.node_id)
        assert keys(mallory, "private_keys") == set() and keys(mallory, "web_messenger") == set()
        assert all(eve.store.count(d) == 0 for d in ("consumers", "private_keys",
                                                     "cluster_policy", "web_messenger"))
        assert keys(eve, "groups") == {"from-eve"}
        assert "from-eve" not in keys(a, "groups") | keys(b, "groups")
        # Nor is eve a member of theirs, though she speaks to them directly: she waits in
        # their bounded pending sets, while mallory, admitted, is a member.
        for x in honest:
            assert x.core.membership.member(eve.identity.node_id) is None
            assert x.core.membership.member(m_id).state == "alive"

        # A member that loses its grant hands its keys off and leaves no trace on disk.
        secret_slice = secret_only(ALICE)

        def files_with_secret():
            return [p.name for p in b.config.data_dir.iterdir()
                    if p.is_file() and secret_slice in p.read_bytes()]

        assert files_with_secret()  # the oracle finds the key while b holds it
        admin_write(a, "grant/" + b.identity.node_id.hex(), {"admitted": True, "wep": True})
        await wait_until(lambda: keys(b, "private_keys") == set(), "b purged Alice's key")
        assert keys(a, "private_keys") == {ALICE.fingerprint}
        assert files_with_secret() == []
        for agent in agents.values():
            agent.stop()

    eve_id = eve.identity.node_id
    assert not [m for peer, m in sealed if peer == eve_id and getattr(m, "records", ())]
    assert any(peer == eve_id for peer, _ in sealed)  # the capture saw her traffic
    for name in ("mallory", "eve"):
        offender = short_id(agents[name].identity.node_id)
        assert f"refused from {offender}" in caplog.text
    assert MALLORY_KEY.secret_key.hex()[:64] not in caplog.text
