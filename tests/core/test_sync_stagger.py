"""Staggered sessions (anti_entropy.py rules 7 and 8, sync.py rule 7): a member that sees
several peers return reconciles with them one after another per dataset, so it is sent each
record it lacks once, not once per returning peer; two openings that cross leave one session;
and sessions that wait on each other never stall."""

from gossipnode.config import ReplicationConfig
from gossipnode.core.anti_entropy import CROSSED
from gossipnode.core.events import SyncCompleted
from gossipnode.core.reconcile_messages import ReconcileOpen, ReconcileTurn
from gossipnode.core.replication import Push
from tests.core.node_harness import Cluster, diverged_pair

ALL = {"wep": False, "private_keys": True}
# Regular rounds far apart: what happens within seconds is the immediate rounds' doing.
SLOW = ReplicationConfig(anti_entropy_interval_s=120.0)


def received(cluster, index):
    return cluster.nodes[index].statistics().get("anti_entropy_records_received", 0)


def test_after_a_heal_each_member_is_sent_each_record_it_lacks_once():
    for seed in (1, 3):  # two clusters: whoever notices whose return first differs
        cluster = Cluster([ALL] * 5, replication=SLOW, seed=seed)
        cluster.run_for(5)
        left, right = [0, 1], [2, 3, 4]
        cluster.partition(left, right)
        for step in range(100):
            cluster.put(left[step % 2], "consumers", f"l{step}", {"n": step})
            cluster.put(right[step % 3], "consumers", f"r{step}", {"n": step})
            cluster.run_for(0.1)
        cluster.run_for(15)  # each side declares the other dead
        lacking = [200 - len(cluster.records(i, "consumers")) for i in range(5)]
        before = [received(cluster, i) for i in range(5)]
        cluster.heal()
        cluster.run_for(3)
        assert all(len(cluster.records(i, "consumers")) == 200 for i in range(5))
        # Every record a session brought was one the member lacked: the returning peers of
        # the other side all hold it, and only the first session with one of them sent it.
        brought = [received(cluster, i) - before[i] for i in range(5)]
        assert all(b <= need for b, need in zip(brought, lacking, strict=True)), (
            seed, brought, lacking)



def test_two_openings_that_cross_leave_the_session_of_the_lower_node_id():
    cluster = diverged_pair(SLOW)
    ids = [node.node_id for node in cluster.nodes]
    low, high = (0, 1) if ids[0] < ids[1] else (1, 0)
    mark, before = len(cluster.reported), [received(cluster, i) for i in range(2)]
    # Both ends open at the same instant: neither opening has arrived when the other leaves.
    for index in (0, 1):
        cluster.nodes[index].sync.repair(cluster.now, ids[1 - index], "consumers")
        cluster._collect(index)
    cluster.run_for(1)
    assert cluster.records(0, "consumers") == cluster.records(1, "consumers")
    assert len(cluster.records(0, "consumers")) == 40
    # Each record crossed once: 20 each way, not 20 each way per session.
    assert [received(cluster, i) - before[i] for i in range(2)] == [20, 20]
    ends = [(i, e.initiated, e.failure) for i, e in cluster.reported[mark:]
            if isinstance(e, SyncCompleted)]
    assert (low, True, None) in ends and (high, False, None) in ends
    assert (high, True, CROSSED) in ends


def test_sessions_that_wait_on_each_other_in_a_ring_all_complete_at_once():
    cluster = Cluster([ALL] * 3, replication=SLOW)
    cluster.run_for(5)
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    for i in range(3):
        for n in range(10):
            cluster.put(i, "consumers", f"k{i}-{n}", {"n": n})
    cluster.run_for(1)
    ids = [node.node_id for node in cluster.nodes]
    mark = len(cluster.reported)
    # 0 opens with 1, 1 with 2, 2 with 0, all at once, as staggered rounds do.
    for index in range(3):
        cluster.nodes[index].sync._start_sessions(ids[(index + 1) % 3], ("consumers",),
                                                  cluster.now)
        cluster._collect(index)
    cluster.run_for(1)  # far less than any stall timeout or the longest wait
    assert all(len(cluster.records(i, "consumers")) == 30 for i in range(3))
    failures = [e.failure for _, e in cluster.reported[mark:]
                if isinstance(e, SyncCompleted) and e.failure is not None
                and "withdrawn" not in e.failure]
    assert failures == []
    assert all(cluster.nodes[i].statistics()["anti_entropy_sessions_waiting"] == 0
               for i in range(3))


def test_an_opening_waits_unanswered_while_a_session_over_its_dataset_moves():
    cluster = Cluster([ALL] * 3, replication=SLOW)
    cluster.run_for(5)
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    for n in range(30):
        cluster.put(1, "consumers", f"a{n}", {"n": n})
        cluster.put(2, "consumers", f"b{n}", {"n": n})
    cluster.run_for(1)
    ids = [node.node_id for node in cluster.nodes]
    # Node 0 answers node 1; while that session moves, node 2's opening waits at node 0.
    cluster.nodes[1].sync._start_sessions(ids[0], ("consumers",), cluster.now)
    cluster._collect(1)
    cluster.run_for(0.006)  # node 0 answered
    mark = len(cluster.sent)
    cluster.nodes[2].sync._start_sessions(ids[0], ("consumers",), cluster.now)
    cluster._collect(2)
    cluster.run_for(0.006)
    assert cluster.nodes[0].statistics()["anti_entropy_sessions_waiting"] == 1
    assert not [m for a, b, m in cluster.sent[mark:] if (a, b) == (0, 2)
                and isinstance(m, ReconcileTurn)]
    cluster.run_for(1)
    assert all(len(cluster.records(i, "consumers")) == 60 for i in (0, 2))
    assert cluster.records(1, "consumers") != cluster.records(0, "consumers")  # not asked
    opened = [(a, b) for a, b, m in cluster.sent if isinstance(m, ReconcileOpen)]
    assert (2, 0) in opened
