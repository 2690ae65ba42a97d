"""An administrator-signed force-leave in the core: the signed `force_left/<id>` record
replicates, every member forgets the subject and takes no alive statement of it at or below
the bound again, until the subject itself comes back above it (core/membership/state.py
rule 9). Forged and replayed statements are refused."""

from __future__ import annotations

import dataclasses

from gossipnode.config import ReplicationConfig
from gossipnode.core.events import PeerRefused
from gossipnode.core.membership import ALIVE, DEAD, PushPull, Updates
from gossipnode.core.records import Version
from gossipnode.core.replication import Push
from gossipnode.wire.cbor import encode_value

from .node_harness import Cluster
from .test_authority import admin_write, grant, sign_record

PRIVATE = {"private_keys": True}
# Long enough for a crashed member to be suspected and declared dead (Lifeguard).
DEATH_S = 30.0
# Several push-pull and reconnect intervals: time for gossip to bring anything back.
GOSSIP_WINDOW_S = 200.0


def admitted_cluster(size: int = 3) -> Cluster:
    cluster = Cluster([PRIVATE] * size, administrated=True,
                      replication=ReplicationConfig(anti_entropy_interval_s=5.0))
    for index in range(size):
        grant(cluster, index)
    cluster.run_for(10)
    return cluster


def state_of(cluster, observer, subject):
    member = cluster.nodes[observer].membership.member(cluster.identities[subject][0])
    return None if member is None else member.state


def incarnation_of(cluster, observer, subject):
    return cluster.nodes[observer].membership.member(cluster.identities[subject][0]).incarnation


def force_leave(cluster, via, subject, incarnation, *, wall_ms=None):
    return admin_write(cluster, via, "force_left/" + cluster.identities[subject][0].hex(),
                       {"incarnation": incarnation}, wall_ms=wall_ms)


def test_a_forced_out_member_is_gone_everywhere_and_gossip_cannot_bring_it_back():
    cluster = admitted_cluster()
    cluster.crash(2)
    # n1 is cut off from n0 meanwhile: it still holds n2 (dead) when the force-leave is made.
    cluster.partition([0], [1])
    cluster.run_for(DEATH_S)
    assert state_of(cluster, 0, 2) == DEAD and state_of(cluster, 1, 2) == DEAD
    bound = incarnation_of(cluster, 0, 2)
    subject_id = cluster.identities[2][0]
    stale = cluster.nodes[1].membership._table.members[subject_id].alive
    force_leave(cluster, 0, 2, bound)
    assert state_of(cluster, 0, 2) is None  # marked left and forgotten at once here
    assert state_of(cluster, 1, 2) == DEAD  # not there yet
    cluster.heal()
    cluster.run_for(GOSSIP_WINDOW_S)
    for observer in (0, 1):
        assert state_of(cluster, observer, 2) is None
        assert all(
            node_id != cluster.identities[2][0]
            for node_id, _, _ in cluster.nodes[observer].membership.pending_members()
        )
    # Its last alive statement, relayed by a member that still had it, or sent by a zombie of
    # its former life (which would make it a member again at once): both refused.
    for sender in (cluster.identities[1][0], subject_id):
        cluster.nodes[0].receive(sender, PushPull(False, Updates(alive=(stale,))), cluster.now)
        cluster._collect(0)
    cluster.run_for(10)
    assert state_of(cluster, 0, 2) is None
    assert cluster.nodes[0].statistics()["membership_force_left_refused"] >= 2

    # The subject itself comes back with a higher incarnation: a restart.
    cluster.restart(2, incarnation=bound + 1)
    cluster.run_for(20)
    for observer in (0, 1):
        assert state_of(cluster, observer, 2) == ALIVE


def test_a_running_subject_refutes_above_the_bound_and_stays():
    cluster = admitted_cluster()
    bound = incarnation_of(cluster, 0, 2)
    force_leave(cluster, 0, 2, bound)  # made although n2 is in fact alive
    cluster.run_for(20)
    for observer in (0, 1):
        assert state_of(cluster, observer, 2) == ALIVE
        assert incarnation_of(cluster, observer, 2) > bound
    assert cluster.nodes[2].statistics()["membership_refutations"] >= 1


def test_a_replayed_force_leave_cannot_remove_the_member_that_came_back():
    cluster = admitted_cluster()
    cluster.crash(2)
    cluster.run_for(DEATH_S)
    bound = incarnation_of(cluster, 0, 2)
    record = force_leave(cluster, 0, 2, bound)
    cluster.run_for(10)
    cluster.restart(2, incarnation=bound + 1)
    cluster.run_for(20)
    assert state_of(cluster, 0, 2) == ALIVE
    # An insider (n1's identity) replays the signed record to everyone, n2 included.
    for target in (0, 2):
        cluster.nodes[target].receive(cluster.identities[1][0], Push(77, (record,)), cluster.now)
        cluster._collect(target)
    cluster.run_for(GOSSIP_WINDOW_S)
    for observer in (0, 1):
        assert state_of(cluster, observer, 2) == ALIVE
        assert incarnation_of(cluster, observer, 2) == bound + 1  # nothing to refute
    # An older force-leave (a lower bound, an older version) loses to the stored one.
    older = sign_record(cluster.admin[1], "cluster_policy",
                        "force_left/" + cluster.identities[2][0].hex(), {"incarnation": 0},
                        Version(record.version.wall_ms - 1, 0, cluster.admin[0]))
    cluster.nodes[0].receive(cluster.identities[1][0], Push(78, (older,)), cluster.now)
    assert cluster.stores[0].get(record.dataset, record.key) == record


def test_a_forged_force_leave_is_refused_and_removes_nobody():
    cluster = admitted_cluster()
    victim = cluster.identities[0][0]
    key = "force_left/" + victim.hex()
    insider_id, insider_sign = cluster.identities[1]
    wall_ms = int(cluster.now * 1000)
    # Signed by a member's own key, not a pinned administrator key.
    by_insider = sign_record(insider_sign, "cluster_policy", key, {"incarnation": 2**40},
                             Version(wall_ms, 0, insider_id))
    # A genuine administrator record about someone else, re-aimed at the victim.
    genuine = force_leave(cluster, 1, 2, 0)  # n2 is alive above 0: harmless in itself
    re_aimed = dataclasses.replace(genuine, key=key)
    # The genuine record with its bound raised, signature kept.
    raised = dataclasses.replace(genuine, value=encode_value({"incarnation": 2**40}))
    cluster.nodes[2].events()
    cluster.nodes[2].receive(insider_id, Push(9, (by_insider, re_aimed, raised)), cluster.now)
    refused = [e for e in cluster.nodes[2].events() if isinstance(e, PeerRefused)]
    assert len(refused) == 3
    cluster.run_for(GOSSIP_WINDOW_S)
    for observer in range(3):
        assert state_of(cluster, observer, 0) == ALIVE
        assert state_of(cluster, observer, 2) == ALIVE
    assert cluster.stores[2].get("cluster_policy", key) is None


def test_an_open_cluster_ignores_force_leave_records():
    cluster = Cluster([PRIVATE] * 3)
    cluster.run_for(10)
    cluster.policy(0, "force_left/" + cluster.identities[2][0].hex(), {"incarnation": 2**40})
    cluster.run_for(10)
    assert cluster.nodes[0].policy.force_left == {}
    for observer in range(3):
        assert state_of(cluster, observer, 2) == ALIVE
