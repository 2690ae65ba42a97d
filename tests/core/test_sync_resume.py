"""SyncScheduler rule 5: a reconciliation session cut short by its connection (or a stall)
is opened again with the same peer within RESUME_AFTER_S, not at the next round, and one
session brings both sides' differences; a session the peer refused is not asked again, and
a link that keeps failing is given up after RESUMES_MAX resumes."""

from gossipnode.config import ReplicationConfig
from gossipnode.core.events import SyncCompleted
from gossipnode.core.reconcile_messages import ReconcileOpen, ReconcileTurn
from gossipnode.core.replication import Push
from gossipnode.core.sync import RESUME_AFTER_S, RESUMES_MAX
from tests.core.node_harness import diverged_pair

# Regular rounds far apart (the first at least 60 s after start): whatever syncs within
# seconds of a cut is rule 5's doing.
SLOW = ReplicationConfig(anti_entropy_interval_s=120.0)



def cut_sessions(cluster, at):
    """Start a repair from node 0, lose every session message from then on, and report
    the connection to the other end lost at node `at` once the session is under way."""
    cluster.dropping = lambda sender, target, message: isinstance(
        message, Push | ReconcileTurn)
    cluster.nodes[0].sync.repair(cluster.now, cluster.nodes[1].node_id, "consumers")
    cluster._collect(0)
    cluster.run_for(0.1)
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    other = 1 - at
    cluster.nodes[at].connection_lost(cluster.configs[other].listen, cluster.now)
    cluster._collect(at)


def ended(cluster, index):
    return [e for i, e in cluster.reported if i == index and isinstance(e, SyncCompleted)
            and e.dataset == "consumers"]


def test_a_cut_session_is_opened_again_at_once_and_both_sides_converge_in_it():
    cluster = diverged_pair(SLOW)
    cut_sessions(cluster, at=0)
    assert ended(cluster, 0)[-1].failure == "connection lost"
    mark = len(cluster.sent)
    cluster.run_for(RESUME_AFTER_S + 0.5)
    opened = [(a, b, m.dataset) for a, b, m in cluster.sent[mark:]
              if isinstance(m, ReconcileOpen)]
    assert opened == [(0, 1, "consumers")]  # the cut dataset only, by the end that saw it
    assert cluster.records(0, "consumers") == cluster.records(1, "consumers")
    assert len(cluster.records(0, "consumers")) == 40
    last = ended(cluster, 0)[-1]
    assert last.failure is None and (last.received, last.sent) == (20, 20)


def test_the_answering_end_that_sees_the_cut_opens_the_session_itself():
    cluster = diverged_pair(SLOW)
    cut_sessions(cluster, at=1)  # node 1 answered the session; its link went down
    mark = len(cluster.sent)
    cluster.run_for(RESUME_AFTER_S + 0.5)
    opened = [(a, b) for a, b, m in cluster.sent[mark:] if isinstance(m, ReconcileOpen)]
    assert opened == [(1, 0)]
    assert cluster.records(0, "consumers") == cluster.records(1, "consumers")
    assert len(cluster.records(1, "consumers")) == 40


def test_a_session_the_peer_refused_is_not_resumed():
    cluster = diverged_pair(SLOW)
    node = cluster.nodes[0]
    peer = cluster.nodes[1].node_id
    cluster.nodes[1].lifecycle.quarantined = lambda: True  # refuses every session
    mark = len(cluster.sent)
    node.sync.repair(cluster.now, peer, "consumers")
    cluster._collect(0)
    cluster.run_for(5)
    assert ended(cluster, 0)[-1].failure.startswith("peer abandoned the session")
    opened = [m for a, _, m in cluster.sent[mark:] if a == 0 and isinstance(m, ReconcileOpen)]
    assert len(opened) == 1
    assert node.statistics().get("sessions_resumed", 0) == 0


def test_a_link_that_keeps_failing_is_resumed_a_bounded_number_of_times():
    cluster = diverged_pair(SLOW)
    node = cluster.nodes[0]
    address = cluster.configs[1].listen
    cluster.dropping = lambda sender, target, message: isinstance(
        message, Push | ReconcileTurn)
    node.sync.repair(cluster.now, cluster.nodes[1].node_id, "consumers")
    cluster._collect(0)
    # Every session towards node 1 loses its connection shortly after it opens (all of
    # this well before the first regular round).
    for _ in range(RESUMES_MAX + 2):
        cluster.run_for(0.2)
        node.connection_lost(address, cluster.now)
        cluster._collect(0)
        cluster.run_for(RESUME_AFTER_S * 2 ** RESUMES_MAX)
    stats = node.statistics()
    assert stats["sessions_resumed"] == RESUMES_MAX
    assert stats["sessions_resume_given_up"] >= 1
    # A completed session starts the count afresh: the next cut is resumed again.
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    node.sync.repair(cluster.now, cluster.nodes[1].node_id, "consumers")
    cluster._collect(0)
    cluster.run_for(1)
    assert ended(cluster, 0)[-1].failure is None
    cut_sessions(cluster, at=0)
    cluster.run_for(RESUME_AFTER_S + 0.5)
    assert node.statistics()["sessions_resumed"] == RESUMES_MAX + 1


def test_no_round_opens_a_second_session_over_a_dataset_already_being_reconciled():
    cluster = diverged_pair(SLOW)
    node, peer = cluster.nodes[0], cluster.nodes[1].node_id
    # The peer's session over `consumers` towards us is under way (its turns held back).
    cluster.dropping = lambda sender, target, message: isinstance(
        message, Push | ReconcileTurn)
    cluster.nodes[1].sync.repair(cluster.now, node.node_id, "consumers")
    cluster._collect(1)
    cluster.run_for(0.1)
    cluster.put(0, "groups", "g", {"members": []})  # groups differ too (its push is lost)
    mark = len(cluster.sent)
    node.sync.round(cluster.now)  # the regular round draws the only peer there is
    cluster._collect(0)
    opened = {m.dataset for a, _, m in cluster.sent[mark:]
              if a == 0 and isinstance(m, ReconcileOpen)}
    assert "consumers" not in opened
    assert "groups" in opened  # the others are reconciled as usual
    assert node.anti_entropy.datasets_running(peer) >= {"consumers", "groups"}
