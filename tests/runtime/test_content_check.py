"""The agent checks record values by content: strict CBOR maps, and no secret key material
in the public `consumers` dataset, whether written here or sent by a peer."""

import pytest

from gossipnode.config import NodeConfig
from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.events import PeerRefused
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push
from gossipnode.identity import create_identity, generate_secret
from gossipnode.openpgp import consumer_value, generate_key, split_keys
from gossipnode.runtime.agent import Agent
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import encode_value

PEER = b"\x05" * 32


@pytest.fixture
async def agent(tmp_path):  # async: an agent reads Trio's clock, so it lives in a Trio run
    config = NodeConfig(name="a", data_dir=tmp_path, listen=("127.0.0.1", 7946))
    agent = Agent(config, create_identity(tmp_path / "identity.key"), (generate_secret(),),
                  SqliteStore(config.store_file))
    yield agent
    agent.store.close()


def now(agent):
    return agent.clock()


async def test_public_certificates_are_accepted_and_secret_keys_refused(agent):
    key = split_keys(generate_key("Alice <alice@example.org>"))[0]
    public = encode_value(consumer_value(key))
    agent.core.put("consumers", key.fingerprint, public, now(agent))
    assert agent.store.get("consumers", key.fingerprint) is not None
    leaky = encode_value({**consumer_value(key), "cert": key.secret_key})
    with pytest.raises(LocalProtocolError, match="secret key material is not allowed"):
        agent.core.put("consumers", "leaky", leaky, now(agent))
    assert agent.store.get("consumers", "leaky") is None


async def test_a_peer_sending_secret_material_or_a_bad_value_is_refused(agent):
    key = split_keys(generate_key("Bob <bob@example.org>"))[0]
    version = Version(agent.wall_ms(), 0, PEER)
    leaky = Record("consumers", "leaky", encode_value({"cert": key.secret_key}), version)
    not_a_map = Record("groups", "list", b"\x82\x01\x02", version)  # a CBOR array
    fine = Record("groups", "fine", encode_value({"members": []}), version)
    agent.core.receive(PEER, Push(1, (leaky, not_a_map, fine)), now(agent))
    refusals = [e for e in agent.core.events() if isinstance(e, PeerRefused)]
    assert len(refusals) == 2
    assert "secret key material" in refusals[0].reason
    assert "map" in refusals[1].reason
    assert agent.store.get("consumers", "leaky") is None
    assert agent.store.get("groups", "list") is None
    assert agent.store.get("groups", "fine") is not None
    assert agent.core.statistics()["records_refused"] == 2
