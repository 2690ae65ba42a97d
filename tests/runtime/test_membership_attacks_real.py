"""An insider (the cluster secret and fresh identities) attacks real agents: claims at the
highest incarnation, a push-pull of thousands of self-signed members, a flood of ping
requests naming arbitrary addresses, a name with control characters. Every honest member
stays alive in every view, replication keeps working, no agent exits."""

import os
import random
import sys
import time
from pathlib import Path

import nacl.signing
import pytest
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from local_cluster import LocalCluster

from gossipnode.config import WireConfig
from gossipnode.core.membership import (
    Alive,
    Dead,
    Gossip,
    PingRequest,
    PushPull,
    Suspect,
    Updates,
    alive_signed_bytes,
)
from gossipnode.identity import Identity, load_secret, parse_node_id
from gossipnode.runtime.transport import ConnectionClosed, connect

pytestmark = pytest.mark.slow

INCARNATION_MAX = 2**64 - 1
# Resident memory through the attack. The flood this guards against grew one agent from 36 MB
# to 255 MB for good (ping requests queued without bound). Now the bounded parts fill and stay
# full: the pending set (`pending_members_max`), the verified-signature cache (2 x
# `members_max` entries: each attack brings 4,093 fresh forged members, so two attacks fill
# it) and the codecs compiled for these messages. Measured: 8.4-8.8 MiB after two attacks, and
# a third adds under 0.5 MiB: nothing accumulates.
RSS_GROWTH_MAX_KIB = 16 * 1024
RSS_REPEAT_GROWTH_MAX_KIB = 2 * 1024
SETTLE_S = 2.0
# Every wait here is bounded by this.
ATTACK_TIMEOUT_S = 60


def forged_members(count: int) -> tuple[Alive, ...]:
    statements = []
    for number in range(count):
        key = nacl.signing.SigningKey(os.urandom(32))
        node_id, name = bytes(key.verify_key), f"fake{number}"
        signed = alive_signed_bytes(node_id, name, "192.0.2.1", 10_000 + number, 1, ())
        statements.append(
            Alive(node_id, name, "192.0.2.1", 10_000 + number, 1, (), key.sign(signed).signature)
        )
    return tuple(statements)


async def attack(cluster: LocalCluster, ids: list[bytes]) -> None:
    secret = load_secret(cluster.root / "cluster.secret")
    attacker = Identity(nacl.signing.SigningKey(os.urandom(32)))
    forged = forged_members(4093)
    with trio.fail_after(ATTACK_TIMEOUT_S):
        for index, port in enumerate(cluster.ports):
            connection = await connect(("127.0.0.1", port), attacker, (secret,), WireConfig())
            try:
                await attack_one(connection, attacker.node_id, ids, ids[(index + 1) % 3], forged)
            except ConnectionClosed:
                pass  # the bad name drops the connection, as it should
            finally:
                await connection.aclose()


async def attack_one(connection, attacker_id, ids, target, forged) -> None:
    claims = Updates(
        dead=tuple(Dead(node_id, INCARNATION_MAX, attacker_id) for node_id in ids),
        suspect=tuple(Suspect(node_id, INCARNATION_MAX, attacker_id) for node_id in ids),
    )
    await connection.send(Gossip(claims))  # the receiver's own id included
    await connection.send(PushPull(False, Updates(alive=forged)))
    rng = random.Random(1)
    for sequence in range(2000):
        host = f"192.0.2.{rng.randrange(1, 255)}"
        port = rng.randrange(1, 65535)
        await connection.send(PingRequest(sequence, target, host, port, host, 9, Updates()))
    key = nacl.signing.SigningKey(os.urandom(32))
    node_id, bad_name = bytes(key.verify_key), "evil\n\x1b[2J"
    signed = alive_signed_bytes(node_id, bad_name, "192.0.2.2", 1, 1, ())
    alive = Alive(node_id, bad_name, "192.0.2.2", 1, 1, (), key.sign(signed).signature)
    await connection.send(Gossip(Updates(alive=(alive,))))
    await trio.sleep(0.5)


def resident_kib(cluster: LocalCluster) -> dict[int, int]:
    """Each agent's resident memory, once the messages sent to it have been worked off."""
    time.sleep(SETTLE_S)
    return {
        i: int(Path(f"/proc/{p.pid}/status").read_text().split("VmRSS:")[1].split()[0])
        for i, p in cluster.processes.items()
    }


def test_an_insiders_floods_and_lies_leave_the_cluster_whole(tmp_path):
    with LocalCluster(tmp_path, 3) as cluster:
        cluster.start_all()
        cluster.wait_members()
        ids = [
            parse_node_id(next(m["id"] for m in cluster.request(i, "members") if m["self"]))
            for i in range(3)
        ]
        baseline = resident_kib(cluster)
        trio.run(attack, cluster, ids)
        cluster.wait_members(timeout_s=30)
        trio.run(attack, cluster, ids)  # fills the verified-signature cache
        cluster.wait_members(timeout_s=30)
        after_two = resident_kib(cluster)
        trio.run(attack, cluster, ids)  # the same again: memory must not keep growing
        cluster.wait_members(timeout_s=30)
        after_three = resident_kib(cluster)
        for i in range(3):
            rows = cluster.request(i, "members")
            assert sorted(m["name"] for m in rows) == sorted(cluster.names)
            assert all(m["state"] == "alive" for m in rows)
            assert all("\n" not in m["name"] and "\x1b" not in m["name"] for m in rows)
        cluster.request(0, "put", dataset="groups", key="after", value={"ok": True})
        cluster.wait_converged(timeout_s=30)
        assert cluster.request(2, "get", dataset="groups", key="after")["value"] == {"ok": True}
        assert all(process.poll() is None for process in cluster.processes.values())
        grown = {i: after_three[i] - baseline[i] for i in after_three}
        repeated = {i: after_three[i] - after_two[i] for i in after_three}
        print("resident memory grown (KiB): in all", grown, "by the third attack", repeated)
        assert all(growth <= RSS_GROWTH_MAX_KIB for growth in grown.values()), grown
        assert all(growth <= RSS_REPEAT_GROWTH_MAX_KIB for growth in repeated.values()), repeated
        for name in cluster.names:
            log = (cluster.root / f"{name}.log").read_text()
            assert "Traceback" not in log
            assert "\x1b" not in log
