"""What the shell relies on: SyncCompleted events, the status snapshot, and one deadline."""

import dataclasses

import pytest

from gossipnode.core.events import Disconnect, PeerRefused, SyncCompleted
from gossipnode.core.reconcile_messages import ReconcileOpen
from gossipnode.core.replication import Push
from tests.core.node_harness import Cluster

ALL = {"wep": False, "private_keys": True}


def ended(cluster, index, sessions=None):
    return [e for i, e in cluster.reported if i == index and isinstance(e, SyncCompleted)
            and (sessions is None or e.session in sessions)]


def test_a_repair_ends_with_one_sync_completed_per_session_on_both_sides():
    cluster = Cluster([ALL, ALL])
    cluster.run_for(5)
    cluster.partition([0], [1])
    cluster.put(0, "groups", "sales", {"members": ["ann"]})
    cluster.put(0, "consumers", "bob", {"n": 1})
    cluster.heal()
    started = cluster.nodes[0].repair(cluster.now, peer=cluster.nodes[1].node_id)
    cluster._collect(0)
    assert started.peer == cluster.nodes[1].node_id and started.sessions
    cluster.run_for(1)
    mine = ended(cluster, 0, set(started.sessions))
    assert sorted(e.session for e in mine) == sorted(started.sessions)
    assert all(e.initiated and e.failure is None for e in mine)
    assert sum(e.sent for e in mine) == 2  # the two writes the partition held back
    theirs = ended(cluster, 1, set(started.sessions))
    assert {e.dataset for e in theirs} == {e.dataset for e in mine}
    assert not any(e.initiated for e in theirs)
    assert sum(e.received for e in theirs) == 2
    assert cluster.records(1, "groups").keys() == {"sales"}


def test_a_session_that_cannot_finish_still_ends_with_a_failure():
    cluster = Cluster([ALL, ALL])
    cluster.run_for(5)
    started = cluster.nodes[0].repair(cluster.now, peer=cluster.nodes[1].node_id)
    cluster.partition([0], [1])  # the openings are lost
    cluster._collect(0)
    cluster.run_for(40)
    mine = ended(cluster, 0, set(started.sessions))
    assert len(mine) == len(started.sessions)
    assert all(e.failure for e in mine)


def test_the_status_snapshot_is_frozen_and_agrees_with_the_stores():
    cluster = Cluster([ALL, ALL, ALL])
    cluster.run_for(5)
    for i in range(5):
        cluster.put(i % 3, "consumers", f"user{i}", {"n": i})
    cluster.delete(0, "consumers", "user0")
    cluster.run_for(30)
    snapshots = [node.status(cluster.now) for node in cluster.nodes]
    for index, snapshot in enumerate(snapshots):
        consumers = next(d for d in snapshot.datasets if d.name == "consumers")
        held = cluster.records(index, "consumers")
        assert consumers.records == sum(1 for _, value in held.values() if value is not None)
        assert consumers.tombstones == 1
        assert [m.name for m in snapshot.members] == ["n0", "n1", "n2"]
        assert [m.is_self for m in snapshot.members] == [i == index for i in range(3)]
        assert len(snapshot.peers) == 2 and not snapshot.quarantined
        assert snapshot.counters["records_applied"] >= 5
    digests = {next(d.digest for d in s.datasets if d.name == "consumers") for s in snapshots}
    assert len(digests) == 1  # converged: one digest everywhere
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshots[0].generation = 7  # type: ignore[misc]


def test_status_shows_what_a_blocked_peer_has_not_acknowledged():
    cluster = Cluster([ALL, ALL])
    cluster.run_for(5)
    cluster.partition([0], [1])
    cluster.put(0, "groups", "sales", {"members": []})
    peer = cluster.nodes[0].status(cluster.now).peers[0]
    assert peer.name == "n1" and peer.pending_push_records == 1


def test_an_unacknowledged_push_is_sent_again_at_its_deadline_then_given_up():
    # Node 1 cannot hear node 0, but stays alive to it through node 2's indirect probes,
    # so the push to node 1 is neither acknowledged nor dropped with a dead member.
    cluster = Cluster([ALL, ALL, ALL])
    cluster.run_for(5)
    cluster.blocked.add((0, 1))
    cluster.put(0, "groups", "sales", {"members": []})

    def pushes_to_1():
        return [m.push_id for _, to, m in cluster.sent if to == 1 and isinstance(m, Push)]

    push_id = pushes_to_1()[-1]
    cluster.run_for(4.1)  # PUSH_RETRY_S is 2 s: two retries so far
    assert pushes_to_1().count(push_id) == 3
    cluster.run_for(20)
    assert pushes_to_1().count(push_id) == 5  # PUSH_ATTEMPTS_MAX, then anti-entropy's turn
    assert cluster.nodes[0].statistics()["pushes_given_up"] == 1


def test_a_misbehaving_peer_is_disconnected_by_address_and_by_proven_id():
    """The driver needs both to close every connection with it: the address for the link
    we dialled, the node id for the connections it opened to us (a stranger to the member
    list has no address yet, and is still cut off by id)."""
    cluster = Cluster([ALL, ALL])
    cluster.run_for(5)
    node, peer = cluster.nodes
    stranger = b"\x07" * 32
    bad = ReconcileOpen(1, "mail_routes", bytes(16), bytes(32), 0)  # node-local: never synced
    for sender in (peer.node_id, stranger):
        node.receive(sender, bad, cluster.now)
    events = node.events()
    refused = [e for e in events if isinstance(e, PeerRefused)]
    assert [e.peer for e in refused] == [peer.node_id, stranger]
    assert [e for e in events if isinstance(e, Disconnect)] == [
        Disconnect(cluster.configs[1].listen, refused[0].reason, peer.node_id),
        Disconnect(None, refused[1].reason, stranger),
    ]
