"""What the sessions a peer opens may make a node send it (anti_entropy.py rule 9): one copy
of the dataset per STREAM_WINDOW_S, as a budget that refills continuously, so that heals a
few tens of seconds apart are each served while a peer that keeps claiming an empty store
still gets one copy per window."""

from gossipnode.config import ReplicationConfig
from gossipnode.core.merkle import Digest
from gossipnode.core.reconcile_messages import ReconcileAbort, ReconcileOpen
from gossipnode.core.replication import Push
from gossipnode.core.stream_budget import STREAM_WINDOW_S
from tests.core.node_harness import Cluster

ALL = {"wep": False, "private_keys": True}
SLOW = ReplicationConfig(anti_entropy_interval_s=120.0)
RECORDS = 40


def claim_empty(cluster, session):
    """Node 1 opens a session with node 0 claiming it holds no `consumers` record; returns
    node 0's answers to it."""
    empty = Digest("consumers")
    opening = ReconcileOpen(session, "consumers", b"\x00" * 8, empty.root, 0)
    mark = len(cluster.sent)
    cluster.nodes[0].receive(cluster.nodes[1].node_id, opening, cluster.now)
    cluster._collect(0)
    return [m for a, b, m in cluster.sent[mark:] if (a, b) == (0, 1)]


def refused(answers):
    return [m.reason for m in answers if isinstance(m, ReconcileAbort)]


def test_a_peer_sent_a_whole_copy_is_owed_half_of_one_half_a_window_later():
    cluster = Cluster([ALL, ALL], replication=SLOW)
    cluster.run_for(5)
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    for i in range(RECORDS):
        cluster.put(0, "consumers", f"k{i}", {"n": i})
    cluster.run_for(1)
    assert refused(claim_empty(cluster, 1)) == []  # the first copy streams at once
    cluster.run_for(1)
    assert refused(claim_empty(cluster, 2)) == ["sent this dataset in full recently"]
    # Half a window on, half a copy is owed again: a heal's session is answered.
    cluster.run_for(STREAM_WINDOW_S / 2)
    assert refused(claim_empty(cluster, 3)) == []
    cluster.run_for(1)
    # That session took a whole copy again: the budget is spent past one copy.
    assert refused(claim_empty(cluster, 4)) == ["sent this dataset in full recently"]
    # Over many windows, about one copy per window, never one per request.
    answered = 0
    for session in range(5, 5 + 40):
        cluster.run_for(STREAM_WINDOW_S / 8)
        answered += not refused(claim_empty(cluster, session))
    assert answered <= 40 / 8 + 1
