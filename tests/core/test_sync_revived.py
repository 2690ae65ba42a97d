"""SyncScheduler rule 4: a peer that comes (back) alive is reconciled with at once, by one
end of the pair, and no more than the per-peer and per-node bounds allow."""

import pytest

from gossipnode.config import ReplicationConfig
from gossipnode.core.reconcile_messages import ReconcileOpen
from gossipnode.core.replication import Push
from gossipnode.core.sync import (
    REVIVED_FOLLOW_UP_S,
    REVIVED_GRACE_S,
    REVIVED_NOTICE_SKEW_S,
    REVIVED_PEER_GAP_S,
    REVIVED_ROUNDS_PER_INTERVAL_MAX,
)
from tests.core.node_harness import Cluster

ALL = {"wep": False, "private_keys": True}
# Regular rounds far apart: the first falls at least half of this after start, so whatever
# syncs within a few seconds of a return is rule 4's doing.
SLOW = ReplicationConfig(anti_entropy_interval_s=120.0)


def diverge(cluster, index):
    """A write on member `index` that its pushes do not carry: its data differs from the
    others' (over data that agrees a round opens nothing, test_sync_agreed.py)."""
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    cluster.put(index, "groups", "unpushed", {"v": 1})


def opens(cluster, since_index):
    """(from, to) of every ReconcileOpen sent after the first `since_index` sends."""
    return [(a, b) for a, b, m in cluster.sent[since_index:] if isinstance(m, ReconcileOpen)]


def test_a_restarted_member_gets_what_it_missed_within_seconds_not_a_round():
    cluster = Cluster([ALL, ALL], replication=SLOW)
    cluster.run_for(5)
    cluster.crash(1)
    for i in range(50):
        cluster.put(0, "consumers", f"user{i}", {"n": i})
    cluster.run_for(5)
    cluster.restart(1, incarnation=2)
    cluster.run_for(3)
    assert cluster.records(1, "consumers") == cluster.records(0, "consumers")
    assert len(cluster.records(1, "consumers")) == 50


def test_only_one_end_of_a_return_opens_sessions():
    cluster = Cluster([ALL, ALL], replication=SLOW)
    cluster.run_for(5)
    cluster.crash(1)
    cluster.put(0, "groups", "while-away", {"v": 1})
    cluster.run_for(5)
    mark = len(cluster.sent)
    cluster.restart(1, incarnation=2)
    # Before the follow-up round (a regular round, from a random end).
    cluster.run_for(REVIVED_FOLLOW_UP_S * 0.9)
    directions = set(opens(cluster, mark))
    assert len(directions) == 1, directions
    (opener, _), = directions
    lower = min((0, 1), key=lambda i: cluster.nodes[i].node_id)
    assert opener == lower
    assert "while-away" in cluster.records(1, "groups")


def test_the_higher_end_starts_when_the_lower_end_did_not_notice():
    cluster = Cluster([ALL, ALL], replication=SLOW)
    # Past the per-peer bound of the returns both ends saw at start-up, and past the
    # regular round that falls in that time.
    cluster.run_for(SLOW.anti_entropy_interval_s + 5)
    higher = max((0, 1), key=lambda i: cluster.nodes[i].node_id)
    other = 1 - higher
    diverge(cluster, other)
    mark = len(cluster.sent)
    # Only the higher end learns of the return (say the lower one never saw it go).
    cluster.nodes[higher].sync.revived([cluster.nodes[other].node_id], cluster.now)
    cluster.run_for(REVIVED_GRACE_S / 2)
    assert opens(cluster, mark) == []  # still waiting for the lower end
    cluster.run_for(REVIVED_GRACE_S)
    assert {pair for pair in opens(cluster, mark)} == {(higher, other)}


def test_a_lower_end_that_notices_the_return_late_opens_no_second_session():
    cluster = Cluster([ALL, ALL], replication=SLOW)
    cluster.run_for(SLOW.anti_entropy_interval_s + 5)
    higher = max((0, 1), key=lambda i: cluster.nodes[i].node_id)
    lower = 1 - higher
    diverge(cluster, lower)
    mark = len(cluster.sent)
    cluster.nodes[higher].sync.revived([cluster.nodes[lower].node_id], cluster.now)
    cluster.run_for(REVIVED_GRACE_S * 1.5)  # the higher end's session is under way or done
    cluster.nodes[lower].sync.revived([cluster.nodes[higher].node_id], cluster.now)
    cluster.run_for(REVIVED_FOLLOW_UP_S / 2)  # not as far as the follow-up round
    assert set(opens(cluster, mark)) == {(higher, lower)}


def test_a_flapping_peer_costs_one_immediate_round_per_gap():
    cluster = Cluster([ALL, ALL], replication=SLOW)
    cluster.run_for(SLOW.anti_entropy_interval_s + 5)
    lower = min((0, 1), key=lambda i: cluster.nodes[i].node_id)
    peer = cluster.nodes[1 - lower].node_id
    node = cluster.nodes[lower]
    node.sync.revived([peer], cluster.now)
    cluster.run_for(0.1)
    first = node.statistics()["revived_rounds"]
    for _ in range(5):  # flapping: returns again and again within the gap
        node.sync.revived([peer], cluster.now)
        cluster.run_for(REVIVED_PEER_GAP_S / 10)
    assert node.statistics()["revived_rounds"] == first
    # Past the gap, and past the follow-up round's session with the peer (which covers a
    # return noticed up to a skew later).
    cluster.run_for(max(REVIVED_PEER_GAP_S, REVIVED_FOLLOW_UP_S + REVIVED_NOTICE_SKEW_S))
    node.sync.revived([peer], cluster.now)
    cluster.run_for(0.1)
    assert node.statistics()["revived_rounds"] == first + 1


@pytest.mark.parametrize("restarted", ["lower", "higher"])
def test_a_member_restarted_twice_within_an_interval_is_caught_up_at_once_both_times(
        restarted):
    cluster = Cluster([ALL, ALL], replication=SLOW)
    cluster.run_for(5)
    ids = [n.node_id for n in cluster.nodes]
    member = ids.index(min(ids) if restarted == "lower" else max(ids))
    other = 1 - member
    for attempt in range(2):
        # A clean stop, as the agent's on SIGTERM: the other end sees the member leave,
        # so the write below is not pushed to it and the restart is a return.
        cluster.nodes[member].leave(cluster.now)
        cluster._collect(member)
        cluster.run_for(0.5)
        cluster.crash(member)
        cluster.put(other, "consumers", f"while-away-{attempt}", {"n": attempt})
        cluster.run_for(2 * REVIVED_PEER_GAP_S)
        cluster.restart(member, incarnation=2 + attempt)
        # Well before the higher end's grace: whichever end restarted, the lower end
        # started at once, though it saw the same peer return moments ago.
        cluster.run_for(REVIVED_GRACE_S / 2)
        assert f"while-away-{attempt}" in cluster.records(member, "consumers"), attempt


def test_many_returns_at_once_start_a_bounded_number_of_rounds():
    members = 9
    cluster = Cluster([ALL] * members, replication=SLOW)
    cluster.run_for(SLOW.anti_entropy_interval_s + 5)
    assert all(len(n.members()) == members for n in cluster.nodes)
    # The node with the lowest id starts at once with every peer it sees return.
    lowest = min(range(members), key=lambda i: cluster.nodes[i].node_id)
    node = cluster.nodes[lowest]
    diverge(cluster, lowest)
    before = node.statistics().get("revived_rounds", 0)
    deferred = node.statistics().get("revived_rounds_deferred", 0)
    mark = len(cluster.sent)
    peers = [cluster.nodes[i].node_id for i in range(members) if i != lowest]
    node.sync.revived(peers, cluster.now)
    cluster.run_for(REVIVED_FOLLOW_UP_S * 0.9)  # the immediate rounds, not the follow-up
    stats = node.statistics()
    assert stats["revived_rounds"] - before == REVIVED_ROUNDS_PER_INTERVAL_MAX
    left_out = members - 1 - REVIVED_ROUNDS_PER_INTERVAL_MAX
    assert stats["revived_rounds_deferred"] - deferred == left_out
    partners = {b for a, b in opens(cluster, mark) if a == lowest}
    assert len(partners) == REVIVED_ROUNDS_PER_INTERVAL_MAX


def test_a_quarantined_node_starts_no_immediate_round():
    cluster = Cluster([ALL, ALL], replication=ReplicationConfig(
        anti_entropy_interval_s=120.0, tombstone_grace_s=60.0))
    cluster.run_for(5)
    cluster.crash(1)
    cluster.run_for(200)  # past the horizon: the returning node is quarantined
    mark = len(cluster.sent)
    cluster.restart(1, incarnation=2)
    cluster.run_for(5)
    assert cluster.nodes[1].quarantined(cluster.now)
    assert all(a != 1 for a, _ in opens(cluster, mark))


def test_records_a_reconciliation_brought_are_not_pushed_onwards():
    from gossipnode.core.replication import Push
    cluster = Cluster([ALL, ALL, ALL], replication=SLOW)
    cluster.run_for(5)
    cluster.crash(1)
    for i in range(20):
        cluster.put(0, "consumers", f"user{i}", {"n": i})
    cluster.run_for(5)
    mark = len(cluster.sent)
    cluster.restart(1, incarnation=2)
    cluster.run_for(5)
    assert len(cluster.records(1, "consumers")) == 20  # brought by the immediate rounds
    forwarded = [r.key for a, _, m in cluster.sent[mark:] if a == 1 and isinstance(m, Push)
                 for r in m.records]
    assert forwarded == []
