"""Whole-cluster scenarios on virtual time: join, crash, slowness, partition, tags, leave,
reap and rejoin. Every wait is bounded in virtual seconds; nothing sleeps."""

from __future__ import annotations

import dataclasses

import pytest

from gossipnode.config import MembershipConfig
from gossipnode.core.membership import (
    ALIVE,
    DEAD,
    LEFT,
    SUSPECT,
    suspicion_bounds_s,
    tags_private_keys,
    tags_wep,
)
from tests.core.membership.membership_helpers import all_alive, converged, node_id, start_cluster
from tests.core.membership.virtual_cluster import VirtualCluster


def views(cores):
    """Each core's view of everyone: node id -> (state, incarnation, tags)."""
    return [
        {
            member.node_id: (member.state, member.incarnation, dict(member.tags))
            for member in core.members()
        }
        for core in cores
    ]


@pytest.mark.parametrize(("count", "within_s"), [(5, 10.0), (100, 30.0)])
def test_cores_join_through_one_seed_and_all_see_all(count, within_s):
    cluster, cores = start_cluster(count)
    assert not all_alive(cores)()  # before any message moves, nobody knows anybody
    converged(cluster, cores, within_s)
    for core in cores:
        assert {member.name for member in core.alive_members()} == {
            f"node-{i}" for i in range(count)
        }


def test_a_forming_cluster_swaps_a_few_full_states_per_member_not_one_per_pair():
    # A joiner confirms the members its seed named with pings that carry its own alive
    # statement, so they learn it first-hand and need not ask it for its state: forming a
    # cluster of n members costs O(n) push-pulls, not O(n**2) (n**3 statements).
    count = 100
    cluster, cores = start_cluster(count)
    converged(cluster, cores, within_s=30.0)
    push_pulls = sum(core.statistics().get("sent_PushPull", 0) for core in cores)
    assert push_pulls <= 3 * count
    assert sum(core.statistics().get("introductions", 0) for core in cores) <= count // 10


def test_a_crashed_member_is_declared_dead_by_every_other_within_the_suspicion_bound():
    config = MembershipConfig()
    cluster, cores = start_cluster(5, seed=2, config=config)
    converged(cluster, cores, within_s=10.0)
    victim, observers = cores[4], cores[:4]
    crashed_at = cluster.now
    cluster.crash(node_id(victim))
    _, maximum_s = suspicion_bounds_s(
        config.suspicion_mult, config.suspicion_max_timeout_mult, config.probe_interval_s, 5
    )
    # Round-robin probing reaches the victim within two rounds of the 4 others; then the
    # probe interval that ends that probe, the longest suspicion, and a second of gossip.
    bound_s = 2 * 4 * config.probe_interval_s + config.probe_interval_s + maximum_s + 1.0
    cluster.run_until(crashed_at + bound_s)
    for observer in observers:
        assert observer.states()[node_id(victim)] == DEAD
        assert {observer.states()[node_id(other)] for other in observers} == {ALIVE}
    declared = [
        change.at
        for change in cluster.changes
        if change.change.node_id == node_id(victim) and change.change.state == DEAD
    ]
    assert len(declared) == 4
    assert max(declared) <= crashed_at + bound_s


def test_a_slow_member_that_is_suspected_refutes_and_probes_less():
    cluster, cores = start_cluster(5, seed=3)
    converged(cluster, cores, within_s=10.0)
    slow, healthy = cores[2], cores[0]
    slow_id = node_id(slow)
    started_at = cluster.now
    probes_before = (slow.statistics()["probes"], healthy.statistics()["probes"])
    # Everything the slow member sends arrives 1.2 s late: its acks miss the 1 s probe.
    cluster.extra_delay_s[slow_id] = 1.2
    cluster.run_until(started_at + 12.0)
    awareness_while_slow = slow.statistics()["awareness"]
    slow_probes = slow.statistics()["probes"] - probes_before[0]
    healthy_probes = healthy.statistics()["probes"] - probes_before[1]
    cluster.extra_delay_s.clear()
    converged(cluster, cores, within_s=20.0)

    suspected = [
        c
        for c in cluster.changes
        if c.change.node_id == slow_id and c.change.state == SUSPECT and c.at >= started_at
    ]
    assert suspected, "the slow member was never suspected: the scenario tests nothing"
    assert slow.statistics()["refutations"] >= 1
    assert slow.local_member.incarnation > 1
    assert not [
        c for c in cluster.changes if c.change.node_id == slow_id and c.change.state == DEAD
    ]
    # Lifeguard: the slow member saw its own probes fail without nacks and backed off.
    assert awareness_while_slow > 0
    assert slow_probes < healthy_probes


def test_a_partition_two_three_is_declared_dead_across_and_heals():
    cluster, cores = start_cluster(5, seed=4)
    converged(cluster, cores, within_s=10.0)
    side_a, side_b = cores[:2], cores[2:]
    for core in side_a:
        cluster.groups[node_id(core)] = 1

    def split() -> bool:
        return all(
            core.states()[node_id(other)] == DEAD
            for side, other_side in ((side_a, side_b), (side_b, side_a))
            for core in side
            for other in other_side
        ) and all(
            core.states()[node_id(other)] == ALIVE
            for side in (side_a, side_b)
            for core in side
            for other in side
        )

    assert cluster.run_until_true(split, cluster.now + 60.0)
    recently_dead_as_a_scan_finds_them(cores, cluster.now)
    cluster.groups.clear()
    # Each probe interval every member sends one member it holds dead its death notice,
    # which it refutes (test_membership_speed.py bounds how soon); push-pull is the backstop.
    converged(cluster, cores, within_s=3 * MembershipConfig().push_pull_interval_s)
    cluster.run_until(cluster.now + 5.0)  # let the refutations finish spreading
    first, *others = views(cores)
    assert all(view == first for view in others)
    assert {state for state, _, _ in first.values()} == {ALIVE}
    recently_dead_as_a_scan_finds_them(cores, cluster.now)


def recently_dead_as_a_scan_finds_them(cores, now: float) -> None:
    """The deaths the member table keeps in order are what a scan of every member finds."""
    horizon = now - MembershipConfig().dead_gossip_s
    for core in cores:
        scanned = {entry.node_id for entry in core._table.members.values()
                   if entry.state == DEAD and entry.state_changed_at >= horizon}
        assert {entry.node_id for entry in core._dissemination.recently_dead(now)} == scanned


def test_a_tag_change_reaches_every_member():
    cluster, cores = start_cluster(
        5, seed=5, tags=lambda i: {"private_keys": "true", "version": "0.1.0", "wep": "false"}
    )
    converged(cluster, cores, within_s=10.0)
    changer = cores[3]
    changer_id = node_id(changer)
    cluster.call(changer, "set_tags", {"private_keys": "false", "version": "0.2.0", "wep": "true"})

    def everyone_sees_it() -> bool:
        return all(tags_wep(core.member(changer_id).tags) for core in cores)

    assert cluster.run_until_true(everyone_sees_it, cluster.now + 10.0)
    for core in cores:
        member = core.member(changer_id)
        assert not tags_private_keys(member.tags)
        assert member.tags["version"] == "0.2.0"
        assert member.state == ALIVE
    announced = [
        c.change
        for c in cluster.changes
        if c.change.node_id == changer_id and ("wep", "true") in c.change.tags
    ]
    assert {c.observer for c in cluster.changes if c.change in announced} >= {
        node_id(core) for core in cores
    }


def test_a_member_that_leaves_is_not_suspected_and_is_reaped_then_rejoins():
    config = dataclasses.replace(MembershipConfig(), reap_after_s=60.0)
    cluster, cores = start_cluster(5, seed=6, config=config)
    converged(cluster, cores, within_s=10.0)
    leaver, stayers = cores[1], cores[:1] + cores[2:]
    leaver_id = node_id(leaver)
    left_at = cluster.now
    cluster.call(leaver, "leave")
    assert leaver.left
    # The shell keeps the process up until the left statement is fully sent.
    assert cluster.run_until_true(lambda: leaver.next_deadline() is None, cluster.now + 10.0)
    cluster.crash(leaver_id)
    assert cluster.run_until_true(
        lambda: all(core.states()[leaver_id] == LEFT for core in stayers), cluster.now + 10.0
    )
    cluster.run_until(cluster.now + 30.0)
    assert all(core.states()[leaver_id] == LEFT for core in stayers)
    assert not [
        c
        for c in cluster.changes
        if c.change.node_id == leaver_id and c.change.state in (SUSPECT, DEAD) and c.at >= left_at
    ]

    cluster.run_until(left_at + config.reap_after_s + 5.0)
    assert all(leaver_id not in core.states() for core in stayers)

    # The restarted member keeps its identity and starts at a higher incarnation.
    old = leaver.local_member
    sign = cluster.signers[leaver_id]
    rejoined = cluster.add(
        old.name,
        node_id=leaver_id,
        sign=sign,
        incarnation=old.incarnation + 1,
        address=old.address,
    )
    cluster.join(rejoined, [cores[0].local_member.address])
    converged(cluster, [*stayers, rejoined], within_s=10.0)
    assert all(core.member(leaver_id).incarnation == old.incarnation + 1 for core in stayers)


def test_a_crashed_member_is_reaped_and_may_rejoin_with_a_higher_incarnation():
    config = dataclasses.replace(MembershipConfig(), reap_after_s=30.0)
    cluster, cores = start_cluster(4, seed=7, config=config)
    converged(cluster, cores, within_s=10.0)
    victim, others = cores[3], cores[:3]
    victim_id = node_id(victim)
    cluster.crash(victim_id)
    assert cluster.run_until_true(
        lambda: all(core.states().get(victim_id) == DEAD for core in others), cluster.now + 40.0
    )
    assert cluster.run_until_true(
        lambda: all(victim_id not in core.states() for core in others), cluster.now + 40.0
    )
    restarted = cluster.add(
        "node-3",
        node_id=victim_id,
        sign=cluster.signers[victim_id],
        incarnation=2,
        address=victim.local_member.address,
    )
    cluster.join(restarted, [cores[0].local_member.address])
    converged(cluster, [*others, restarted], within_s=10.0)


def test_a_restart_with_a_stale_incarnation_refutes_its_former_self():
    """The shell lost the incarnation: the node restarts at 1 with new tags, before anyone
    noticed it was gone. Its former self's alive statement makes it refute upwards."""
    cluster, cores = start_cluster(4, seed=8)
    converged(cluster, cores, within_s=10.0)
    old = cores[2]
    old_id = node_id(old)
    cluster.crash(old_id)
    restarted = cluster.add(
        "node-2",
        node_id=old_id,
        sign=cluster.signers[old_id],
        incarnation=1,
        address=old.local_member.address,
        tags={"version": "0.2.0"},
    )
    cluster.join(restarted, [cores[0].local_member.address])
    everyone = [cores[0], cores[1], restarted, cores[3]]
    assert cluster.run_until_true(
        lambda: all(core.member(old_id).tags.get("version") == "0.2.0" for core in everyone),
        cluster.now + 10.0,
    )
    assert restarted.local_member.incarnation > 1
    converged(cluster, everyone, within_s=10.0)


def test_the_same_seed_replays_the_same_run():
    def run() -> tuple[int, float, list]:
        cluster, cores = start_cluster(6, seed=9)
        cluster.loss = 0.05
        cluster.run_until(20.0)
        return cluster.messages_sent, cluster.now, views(cores)

    assert run() == run()


def test_islands_formed_by_lost_joins_meet_through_their_seeds():
    """Joins lost before anyone knew anyone leave two groups that each know somebody;
    every member names the same two seeds, and the groups must still find each other."""
    cluster = VirtualCluster(MembershipConfig(), 7)
    cores = [cluster.add(f"node-{i}") for i in range(4)]
    seeds = [cores[0].local_member.address, cores[1].local_member.address]
    islands = ({0, 3}, {1, 2})
    for index, core in enumerate(cores):
        cluster.groups[core.local_member.node_id] = 0 if index in islands[0] else 1
    for core in cores:
        cluster.join(core, seeds)
    cluster.run_until(cluster.now + 10)
    for group in islands:
        for index in group:
            assert len(cores[index].states()) == len(group), "islands did not form"
    cluster.groups.clear()  # the network is whole again; nobody knows the other group
    converged(cluster, cores, within_s=3 * MembershipConfig().push_pull_interval_s)
