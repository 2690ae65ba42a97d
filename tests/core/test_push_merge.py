"""Replication rule 3: a retry to a peer takes every push still unacknowledged by it along,
merged into full pushes, so writes that piled up while the peer could not be reached come
back in a few messages, not one per write."""

from gossipnode.config import ReplicationConfig
from gossipnode.core.replication import PUSH_RECORDS_MAX, PUSH_RETRY_S, Push
from tests.core.node_harness import Cluster

ALL = {"wep": False, "private_keys": True}
SLOW = ReplicationConfig(anti_entropy_interval_s=120.0)  # no round within the test
WRITES = 100


def test_pushes_that_piled_up_are_retried_in_full_pushes_and_all_arrive():
    cluster = Cluster([ALL, ALL], replication=SLOW)
    cluster.run_for(5)
    # Node 1 hears no push for a moment (membership still passes: it stays alive).
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    for i in range(WRITES):
        cluster.put(0, "consumers", f"user{i}", {"n": i})
        cluster.run_for(0.01)
    assert cluster.records(1, "consumers") == {}
    cluster.dropping = lambda sender, target, message: False
    mark = len(cluster.sent)
    cluster.run_for(PUSH_RETRY_S)
    pushes = [m for a, b, m in cluster.sent[mark:] if (a, b) == (0, 1) and isinstance(m, Push)]
    sizes = [len(m.records) for m in pushes]
    assert sizes == [PUSH_RECORDS_MAX, WRITES - PUSH_RECORDS_MAX], sizes
    assert cluster.records(1, "consumers") == cluster.records(0, "consumers")
    assert len(cluster.records(1, "consumers")) == WRITES
    assert cluster.nodes[0].statistics()["pushes_pending"] == 0  # the merged ones were acked
