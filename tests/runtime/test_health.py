"""`health` lists every reason to page, and clears when the reason goes: one in-process
agent on a controlled clock, whose messages go nowhere (a peer that never answers)."""

import nacl.signing

from gossipnode.config import NodeConfig, ReplicationConfig
from gossipnode.core.membership.checks import tags_tuple
from gossipnode.core.membership.messages import Alive, PushPull, Updates
from gossipnode.core.membership.signing import alive_signed_bytes
from gossipnode.identity import create_identity, generate_secret
from gossipnode.runtime.agent import Agent
from gossipnode.runtime.status import health
from gossipnode.storage import SqliteStore

INTERVAL_S = 10.0
GRACE_S = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_agent(tmp_path, clock):
    config = NodeConfig(
        name="a", data_dir=tmp_path, listen=("127.0.0.1", 7946), join=(("127.0.0.1", 7999),),
        replication=ReplicationConfig(anti_entropy_interval_s=INTERVAL_S,
                                      tombstone_grace_s=GRACE_S),
    )
    agent = Agent(config, create_identity(tmp_path / "identity.key"), (generate_secret(),),
                  SqliteStore(config.store_file), clock=clock,
                  wall_ms=lambda: int(clock.now * 1000))  # one controlled time for both
    agent.links.enqueue = lambda address, peer, message: None  # nobody ever answers
    return agent


def peer_alive(name: str) -> tuple[bytes, Alive]:
    key = nacl.signing.SigningKey.generate()
    node_id = bytes(key.verify_key)
    tags = tags_tuple({"wep": "false", "private_keys": "true", "version": "x",
                       "generation": "1"})
    signed = alive_signed_bytes(node_id, name, "127.0.0.1", 7998, 1, tags)
    return node_id, Alive(node_id, name, "127.0.0.1", 7998, 1, tags, key.sign(signed).signature)


def test_each_reason_appears_and_clears(tmp_path):
    clock = Clock()
    agent = make_agent(tmp_path, clock)
    agent.input(lambda now: agent.core.join(agent.config.join, now))
    first = health(agent)
    assert first["health"] == "degraded"
    assert len(first["reasons"]) == 1
    assert first["reasons"][0].startswith("knows no other member although it has seeds "
                                          "(127.0.0.1:7999)")

    node_id, alive = peer_alive("b")
    agent.input(lambda now: agent.core.receive(node_id, PushPull(False, Updates(alive=(alive,))),
                                               now))
    assert health(agent) == {"health": "healthy", "reasons": [], "members_alive": 2,
                             "members_total": 2}

    # The peer never answers a reconciliation: after three intervals without a completed
    # sync, that is a reason of its own (the membership has not noticed yet: no timers ran).
    clock.now += 3 * INTERVAL_S + 1
    reasons = health(agent)["reasons"]
    assert reasons == ["no sync completed with a live peer for 31 s "
                       "(more than 3 anti-entropy intervals)"]

    # Time runs on: probes fail, b becomes suspect, then dead; past the grace period this
    # node is quarantined (it could bring deleted records back).
    deadline = clock.now + GRACE_S + 60
    while clock.now < deadline:
        clock.now += 1.0
        agent.input(agent.core.handle_timer)
    reasons = health(agent)["reasons"]
    assert any(r.startswith("member b (") and " is dead (`gossipnode force-leave b`" in r
               for r in reasons), reasons
    assert "this node is quarantined: run `gossipnode reseed`" in reasons
    assert reasons[0].startswith("knows no other member")  # b is dead: nobody left

    assert agent.input(lambda now: agent.core.force_leave(node_id, now)) is True
    assert not any(r.startswith("member b") for r in health(agent)["reasons"])
    agent.store.close()
