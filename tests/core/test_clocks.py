"""Two clocks: monotonic `now` drives every timer, the injected wall clock only stamps
versions and ages tombstones. Stepping one must not disturb what belongs to the other."""

from gossipnode.config import ReplicationConfig

from .node_harness import Cluster

ALL = {"wep": False, "private_keys": True}
HOUR_S = 3600.0
# A wall clock step of an uneven size, so that no rounding of the wall time hides it.
STEP_S = 4321.987


def deadlines(cluster):
    return [node.next_deadline() for node in cluster.nodes]


def run_sampled(cluster, seconds):
    """Run `seconds`, noting every node's next deadline after each virtual second."""
    samples = []
    for _ in range(int(seconds)):
        cluster.run_for(1.0)
        samples.append((cluster.now, deadlines(cluster)))
    return samples


def test_a_wall_clock_step_forwards_or_backwards_moves_no_timer():
    steady, stepped = Cluster([ALL, ALL, ALL]), Cluster([ALL, ALL, ALL])
    for cluster in (steady, stepped):
        cluster.run_for(10)
        cluster.put(0, "groups", "sales", {"members": ["ann"]})
        cluster.run_for(5)
    assert deadlines(stepped) == deadlines(steady)

    stepped.wall_skew_s = [STEP_S, -STEP_S, 0.0]  # two NTP steps, opposite ways
    assert deadlines(stepped) == deadlines(steady)
    first = run_sampled(steady, 20), run_sampled(stepped, 20)
    stepped.wall_skew_s = [-STEP_S, STEP_S, 0.0]  # and back past where they started
    assert deadlines(stepped) == deadlines(steady)
    second = run_sampled(steady, 20), run_sampled(stepped, 20)

    assert first[0] == first[1]
    assert second[0] == second[1]
    # Every message went out at the same moment and said the same: nothing the nodes sent
    # after the steps (membership, anti-entropy) depended on the wall clock.
    assert stepped.sent == steady.sent
    assert stepped.records(2, "groups") == steady.records(2, "groups")


def test_a_monotonic_jump_changes_version_stamps_only_as_the_hybrid_clock_says():
    cluster = Cluster([ALL])
    cluster.run_for(5)
    first = cluster.put(0, "groups", "a", {"v": 1}).version
    assert first.wall_ms == int(cluster.now * 1000)

    # The monotonic clock leaps a day (timers all fall due); the wall clock does not move.
    cluster.now += 24 * HOUR_S
    cluster.wall_skew_s[0] -= 24 * HOUR_S
    cluster.nodes[0].handle_timer(cluster.now)
    second = cluster.put(0, "groups", "b", {"v": 1}).version
    assert (second.wall_ms, second.counter) == (first.wall_ms, first.counter + 1)

    # The wall clock steps back 10 s: stamps still increase, within the highest ms seen.
    cluster.wall_skew_s[0] -= 10.0
    third = cluster.put(0, "groups", "c", {"v": 1}).version
    assert (third.wall_ms, third.counter) == (first.wall_ms, first.counter + 2)

    # The wall clock steps forward past that: the stamp takes the new wall time.
    cluster.wall_skew_s[0] += 20.0
    fourth = cluster.put(0, "groups", "d", {"v": 1}).version
    assert (fourth.wall_ms, fourth.counter) == (first.wall_ms + 10_000, 0)


def test_tombstone_ages_follow_the_wall_clock_not_the_monotonic_one():
    grace_s = 60.0
    cluster = Cluster([ALL, ALL], replication=ReplicationConfig(
        anti_entropy_interval_s=2.0, tombstone_grace_s=grace_s))
    cluster.run_for(5)
    cluster.put(0, "groups", "gone", {"v": 1})
    cluster.run_for(5)
    cluster.delete(0, "groups", "gone")
    cluster.run_for(5)
    assert cluster.records(1, "groups")["gone"][1] is None  # the tombstone reached n1

    # Ten grace periods pass on the monotonic clock alone: every collection timer fires,
    # yet by the wall clock the tombstone is seconds old, so it stays; nor is anyone
    # quarantined, since by the wall clock they synced moments ago.
    jump_s = 10 * grace_s
    cluster.now += jump_s
    cluster.wall_skew_s = [skew - jump_s for skew in cluster.wall_skew_s]
    cluster.run_for(10)
    for index in (0, 1):
        assert "gone" in cluster.records(index, "groups")
        assert not cluster.nodes[index].quarantined(cluster.now)

    # The wall clock steps past the horizon on n1: its next collection drops the tombstone.
    cluster.wall_skew_s[1] += 2 * grace_s
    cluster.run_for(10)
    assert "gone" not in cluster.records(1, "groups")
    assert "gone" in cluster.records(0, "groups")
