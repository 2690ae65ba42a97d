"""SyncScheduler rule 7: rounds open no session over a dataset whose root the peer
advertised equal to ours since it came alive; a dataset that differs is reconciled as
before, and a `repair` always opens its sessions."""

from gossipnode.config import ReplicationConfig
from gossipnode.core.reconcile_messages import ReconcileOpen
from gossipnode.core.replication import Push
from tests.core.node_harness import Cluster

ALL = {"wep": False, "private_keys": True}
# Rounds every 2 s: a 20 s window holds about ten per member.
FAST = ReplicationConfig(anti_entropy_interval_s=2.0)


def opened(cluster, mark):
    return [(a, b, m.dataset) for a, b, m in cluster.sent[mark:] if isinstance(m, ReconcileOpen)]


def test_a_cluster_whose_data_agrees_opens_no_session_and_one_that_differs_does():
    cluster = Cluster([ALL, ALL, ALL], replication=FAST)
    cluster.run_for(30)  # all members, each has heard the others' roots
    mark = len(cluster.sent)
    cluster.run_for(20)
    assert opened(cluster, mark) == []
    assert all(node.statistics()["sessions_skipped_agreed"] > 0 for node in cluster.nodes)

    # One member writes and its pushes are lost: its root differs, so the rounds that
    # involve it reconcile that dataset (and only that one) until all agree again.
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    cluster.put(0, "consumers", "k", {"n": 1})
    mark = len(cluster.sent)
    cluster.run_for(20)
    datasets = {dataset for _, _, dataset in opened(cluster, mark)}
    assert datasets == {"consumers"}
    assert all(cluster.records(i, "consumers") == cluster.records(0, "consumers")
               for i in range(3))
    assert "k" in cluster.records(1, "consumers")

    # Agreed again: the rounds fall silent; an operator's repair still runs.
    cluster.run_for(10)
    mark = len(cluster.sent)
    cluster.run_for(10)
    assert opened(cluster, mark) == []
    cluster.nodes[1].sync.repair(cluster.now, cluster.nodes[2].node_id, "groups")
    cluster._collect(1)
    assert opened(cluster, mark) == [(1, 2, "groups")]
