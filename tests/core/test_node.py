"""NodeCore: replication, containment and placement, on virtual time."""

from gossipnode.core.records import Record
from tests.core.node_harness import Cluster

ALL = {"wep": False, "private_keys": True}


def test_three_nodes_converge_on_writes_made_at_each():
    cluster = Cluster([ALL, ALL, ALL])
    cluster.run_for(5)
    for i in range(3):
        assert len(cluster.nodes[i].members()) == 3
        cluster.put(i, "groups", f"g{i}", {"from": i})
    cluster.run_for(1)
    for i in range(3):
        assert set(cluster.records(i, "groups")) == {"g0", "g1", "g2"}


def test_anti_entropy_repairs_what_a_partition_held_back():
    cluster = Cluster([ALL, ALL, ALL, ALL])
    cluster.run_for(5)
    cluster.partition([0, 1], [2, 3])
    for i in range(20):
        cluster.put(i % 4, "consumers", f"user{i}", {"n": i})
    cluster.delete(0, "consumers", "user4")
    cluster.run_for(3)
    assert cluster.records(0, "consumers") != cluster.records(2, "consumers")
    cluster.heal()
    cluster.run_for(30)
    reference = cluster.records(0, "consumers")
    assert len(reference) == 20 and reference["user4"][1] is None
    for i in range(1, 4):
        assert cluster.records(i, "consumers") == reference


def private_keys_sent_to(cluster, index):
    found = []
    for _, target, message in cluster.sent:
        if target == index:
            found += [r for r in getattr(message, "records", ()) if r.dataset == "private_keys"]
    return found


def test_private_keys_never_reach_a_member_that_opted_out():
    cluster = Cluster([ALL, ALL, {"wep": False, "private_keys": False}, ALL])
    cluster.run_for(5)
    for i in (0, 1, 3):
        cluster.put(i, "private_keys", f"fpr{i}", {"secret": b"k"})
    cluster.run_for(30)
    assert private_keys_sent_to(cluster, 2) == []
    assert cluster.records(2, "private_keys") == {}
    for i in (0, 1, 3):
        assert set(cluster.records(i, "private_keys")) == {"fpr0", "fpr1", "fpr3"}


def test_policy_denial_purges_and_stops_sending():
    cluster = Cluster([ALL, ALL, ALL])
    cluster.run_for(5)
    cluster.put(0, "private_keys", "fpr", {"secret": b"k"})
    cluster.run_for(5)
    assert "fpr" in cluster.records(2, "private_keys")
    denied = cluster.nodes[2].node_id
    cluster.policy(0, "private_keys/" + denied.hex(), {"allow": False})
    cluster.run_for(5)
    assert cluster.records(2, "private_keys") == {}
    before = len(private_keys_sent_to(cluster, 2))
    cluster.put(1, "private_keys", "fpr2", {"secret": b"k2"})
    cluster.run_for(30)
    assert len(private_keys_sent_to(cluster, 2)) == before
    assert cluster.records(2, "private_keys") == {}
    assert set(cluster.records(0, "private_keys")) == {"fpr", "fpr2"}


def test_receiver_refuses_what_it_may_not_hold():
    cluster = Cluster([ALL, {"wep": False, "private_keys": False}])
    cluster.run_for(5)
    from gossipnode.core.records import Version
    from gossipnode.core.replication import Push
    node = cluster.nodes[1]
    sneaky = Record("private_keys", "x", b"\xa0", Version(int(cluster.now * 1000), 0, b"\x01" * 32))
    local = Record("network", "x", b"\xa0", Version(int(cluster.now * 1000), 0, b"\x01" * 32))
    node.receive(cluster.nodes[0].node_id, Push(99, (sneaky, local)), cluster.now)
    assert cluster.records(1, "private_keys") == {}
    assert cluster.stores[1].scan("network") == []
    refusals = [e for e in node.events() if type(e).__name__ == "PeerRefused"]
    assert len(refusals) == 2


def test_mailboxes_live_on_exactly_their_owners_and_move_when_wep_stops():
    WEP = {"wep": True, "private_keys": True}
    cluster = Cluster([WEP, WEP, WEP, ALL])
    cluster.run_for(5)
    for m in range(12):
        cluster.put(3, "web_messenger", f"box{m}", {"owner": "u"})
        cluster.put(m % 3, "web_messenger", f"box{m}/msg1", {"text": "hi"})
    cluster.run_for(30)
    holders = {m: [i for i in range(4) if f"box{m}" in cluster.records(i, "web_messenger")]
               for m in range(12)}
    assert all(len(h) == 2 and 3 not in h for h in holders.values()), holders
    for m, h in holders.items():
        for i in h:
            assert f"box{m}/msg1" in cluster.records(i, "web_messenger")
    cluster.nodes[0].set_tags({"wep": "false"}, cluster.now)
    cluster._collect(0)
    cluster.run_for(30)
    for m in range(12):
        now_holders = [i for i in range(4) if f"box{m}" in cluster.records(i, "web_messenger")]
        assert sorted(now_holders) == [1, 2], (m, now_holders)
        for i in now_holders:
            assert f"box{m}/msg1" in cluster.records(i, "web_messenger")


def test_local_data_stays_on_its_node():
    cluster = Cluster([ALL, ALL, ALL])
    cluster.run_for(5)
    for i in range(3):
        cluster.put(i, "network", "dns", {"server": f"10.0.0.{i}"})
    cluster.run_for(30)
    for i in range(3):
        assert [r.key for r in cluster.stores[i].scan("network")] == ["dns"]
    assert not any(
        r.dataset == "network" for _, _, m in cluster.sent for r in getattr(m, "records", ())
    )


def test_a_member_away_past_the_tombstone_horizon_is_quarantined_until_reseeded():
    from gossipnode.config import ReplicationConfig
    cluster = Cluster([ALL, ALL, ALL], replication=ReplicationConfig(
        anti_entropy_interval_s=2.0, tombstone_grace_s=60.0))
    cluster.run_for(5)
    cluster.put(0, "groups", "doomed", {"v": 1})
    cluster.run_for(5)
    cluster.crash(2)
    cluster.delete(0, "groups", "doomed")
    cluster.run_for(200)  # far past the horizon: the tombstone is collected
    assert "doomed" not in cluster.records(0, "groups")
    assert "doomed" in cluster.records(2, "groups")  # the stale copy on the stopped node
    cluster.restart(2, incarnation=2)
    cluster.run_for(30)
    node = cluster.nodes[2]
    assert node.quarantined(cluster.now)
    assert "doomed" not in cluster.records(0, "groups")  # not brought back
    assert "doomed" not in cluster.records(1, "groups")
    node.reseed(cluster.now)
    cluster.run_for(30)
    assert not node.quarantined(cluster.now)
    assert cluster.records(2, "groups") == cluster.records(0, "groups")
    assert "doomed" not in cluster.records(2, "groups")


def test_restarted_node_catches_up():
    cluster = Cluster([ALL, ALL, ALL])
    cluster.run_for(5)
    cluster.crash(2)
    cluster.put(0, "groups", "while-away", {"v": 1})
    cluster.run_for(10)
    cluster.restart(2, incarnation=2)
    cluster.run_for(30)
    assert "while-away" in cluster.records(2, "groups")
    assert all(m.state == "alive" for m in cluster.nodes[0].members())


def test_a_member_losing_eligibility_hands_off_its_only_copy_before_purging():
    cluster = Cluster([ALL, ALL, ALL])
    cluster.run_for(5)
    cluster.partition([0], [1, 2])
    cluster.put(0, "private_keys", "only-here", {"secret": b"k"})
    cluster.nodes[0].set_tags({"private_keys": "false"}, cluster.now)
    cluster._collect(0)
    cluster.run_for(5)
    # Nobody eligible acknowledged it yet: purging now would lose an acknowledged write.
    assert "only-here" in cluster.records(0, "private_keys")
    cluster.heal()
    cluster.run_for(60)
    assert "only-here" not in cluster.records(0, "private_keys")
    assert "only-here" in cluster.records(1, "private_keys")
    assert "only-here" in cluster.records(2, "private_keys")


def test_a_session_whose_scope_changed_is_aborted_not_left_to_time_out():
    from gossipnode.core.reconcile_messages import ReconcileAbort, ReconcileTurn

    cluster = Cluster([ALL, ALL])
    cluster.run_for(5)
    node, peer = cluster.nodes[0], cluster.nodes[1].node_id
    cluster.put(0, "private_keys", "fpr", {"secret": b"k"})
    node.events()
    # Deny the peer private keys, then let a session try to carry one to it.
    record = cluster.stores[0].get("private_keys", "fpr")
    cluster.policy(0, "private_keys/" + peer.hex(), {"allow": False})
    node.events()
    turn = ReconcileTurn(session=7, turn=1, more=False, ranges=b"", records=(record,))
    node.outbound.send(peer, turn)
    sent = [e.message for e in node.events() if hasattr(e, "message")]
    assert not any(isinstance(m, ReconcileTurn) for m in sent)
    assert ReconcileAbort(7, "scope changed") in sent
