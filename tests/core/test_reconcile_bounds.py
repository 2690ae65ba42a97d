"""What one reconciliation request makes a node send is bounded by what the requester is
owed: its differences in one dataset, once, not once per request."""

from __future__ import annotations

from gossipnode.core.reconcile_messages import ReconcileAbort, ReconcileOpen, ReconcileTurn
from tests.core.node_harness import Cluster


def test_ten_openings_claiming_an_empty_store_stream_the_dataset_once():
    cluster = Cluster([{}, {}])
    cluster.run_for(5.0)
    records = 400
    for i in range(records):
        cluster.put(0, "groups", f"g{i}", {"n": i})
    cluster.run_for(5.0)  # replicated: the requester really holds them all
    node, requester = cluster.nodes[0], cluster.nodes[1].node_id
    streamed = aborted = 0
    for session in range(1, 11):  # ten 70-byte requests: "I have nothing"
        opening = ReconcileOpen(session, "groups", bytes(8), bytes(16), 0)
        node.receive(requester, opening, cluster.now)
        for event in node.events():
            message = getattr(event, "message", None)
            if isinstance(message, ReconcileTurn):
                streamed += len(message.records)
            elif isinstance(message, ReconcileAbort):
                aborted += 1
    assert streamed <= records
    assert aborted == 9
