"""The cluster view in the core: members piggyback their digest roots, and any member
groups the holders of each dataset by root (core/cluster_view.py, membership/roots.py).

The oracle is the stores themselves: two members belong in one group exactly when they
hold the same records of that dataset, which the tests read from the stores, never from
the digests."""

from __future__ import annotations

import random

import pytest

from gossipnode.config import MembershipConfig, ReplicationConfig
from gossipnode.core.errors import RemoteProtocolError
from gossipnode.core.membership import Ping, PushPull, Updates
from gossipnode.core.membership.messages import DatasetRoot
from gossipnode.core.membership.roots import ROOTS_REFRESH_S
from gossipnode.core.reconcile_messages import ReconcileOpen, ReconcileTurn
from gossipnode.core.replication import Push
from gossipnode.wire.peer_messages import PEER_MESSAGES
from tests.core.membership.virtual_cluster import VirtualCluster

from .node_harness import Cluster

PRIVATE = {"private_keys": True}
NO_PRIVATE = {"private_keys": False}
# Anti-entropy rarely, so that a divergence the test makes lasts until it repairs it.
SLOW_SYNC = ReplicationConfig(anti_entropy_interval_s=3600.0)


def agreement(cluster, index, dataset):
    status = cluster.nodes[index].status(cluster.now)
    return next(a for a in status.agreement if a.dataset == dataset)


def grouping(cluster, index, dataset):
    """The groups one node shows, as sets of member names."""
    return {frozenset(h.name for h in g.members) for g in agreement(cluster, index, dataset).groups}


def oracle_grouping(cluster, indices, dataset):
    """Members grouped by the records their stores hold (the independent oracle)."""
    groups: dict[tuple, set[str]] = {}
    for index in indices:
        held = tuple(sorted(cluster.records(index, dataset).items()))
        groups.setdefault(held, set()).add(f"n{index}")
    return {frozenset(names) for names in groups.values()}


def test_every_member_shows_the_same_grouping_once_data_settles():
    cluster = Cluster([PRIVATE] * 3, replication=SLOW_SYNC)
    cluster.run_for(10)
    cluster.put(0, "groups", "sales", {"members": ["ann"]})
    cluster.put(1, "groups", "sales", {"members": ["bob"]})  # a divergent write, same key
    cluster.run_for(10)
    assert oracle_grouping(cluster, range(3), "groups") == {frozenset({"n0", "n1", "n2"})}
    for index in range(3):
        assert grouping(cluster, index, "groups") == {frozenset({"n0", "n1", "n2"})}
        view = agreement(cluster, index, "groups")
        assert view.unknown == () and view.stale == ()
        assert view.groups[0].includes_self
        # The agreement dates from the last write, not from before it.
        assert cluster.now - 10 <= view.groups[0].since <= cluster.now


def test_a_member_that_missed_a_write_is_shown_apart_until_repaired():
    cluster = Cluster([PRIVATE] * 3, replication=SLOW_SYNC)
    cluster.run_for(10)
    # n2 loses every record on the way (pushes and reconciliation), not its membership.
    cluster.dropping = lambda sender, target, message: target == 2 and isinstance(
        message, Push | ReconcileOpen | ReconcileTurn)
    written_at = cluster.now
    cluster.put(0, "groups", "sales", {"members": ["ann"]})
    cluster.run_for(10)
    expected = {frozenset({"n0", "n1"}), frozenset({"n2"})}
    assert oracle_grouping(cluster, range(3), "groups") == expected
    for index in range(3):
        assert grouping(cluster, index, "groups") == expected
        view = agreement(cluster, index, "groups")
        majority = next(g for g in view.groups if len(g.members) == 2)
        assert majority.since >= written_at  # they agree since the write reached n1
        assert view.groups[0] is majority  # the largest group first
    # Datasets nobody wrote stay one group.
    assert grouping(cluster, 2, "keyservers") == {frozenset({"n0", "n1", "n2"})}

    cluster.dropping = lambda sender, target, message: False
    repaired_at = cluster.now
    cluster.nodes[2].repair(cluster.now, dataset="groups")
    cluster._collect(2)
    cluster.run_for(10)
    assert oracle_grouping(cluster, range(3), "groups") == {frozenset({"n0", "n1", "n2"})}
    for index in range(3):
        view = agreement(cluster, index, "groups")
        assert grouping(cluster, index, "groups") == {frozenset({"n0", "n1", "n2"})}
        assert view.groups[0].since >= repaired_at


def test_private_keys_are_compared_only_among_the_members_that_hold_them():
    cluster = Cluster([PRIVATE, NO_PRIVATE, PRIVATE], replication=SLOW_SYNC)
    cluster.run_for(10)
    cluster.put(0, "private_keys", "fpr-alice", {"secret_key": b"alice"})
    cluster.run_for(10)
    assert cluster.records(1, "private_keys") == {}
    for index in (0, 2):
        view = agreement(cluster, index, "private_keys")
        assert grouping(cluster, index, "private_keys") == {frozenset({"n0", "n2"})}
        assert view.unknown == () and view.stale == ()  # n1 is not a holder at all
    # n1 never advertises the dataset it does not hold...
    n1 = cluster.nodes[1].node_id
    advertised = cluster.nodes[0].membership.advertised_roots()[n1].roots
    assert "private_keys" not in advertised and "groups" in advertised
    # ... and never hears of it: its holders advertise it only to the members granted it,
    # so n1 lists no agreement over it.
    for holder in (0, 2):
        heard = cluster.nodes[1].membership.advertised_roots()[cluster.nodes[holder].node_id]
        assert "private_keys" not in heard.roots and "groups" in heard.roots
    assert "private_keys" not in [a.dataset for a in cluster.nodes[1].status(cluster.now).agreement]
    # Mailboxes are never compared (each owner holds its own subset).
    datasets = [a.dataset for a in cluster.nodes[0].status(cluster.now).agreement]
    assert "web_messenger" not in datasets and "cluster_policy" in datasets


def test_a_member_that_opts_out_of_private_keys_stops_hearing_their_root():
    # What a member may hear is kept per member view (its tags): a member's new tags must
    # be judged again, not answered from what it was granted before.
    cluster = Cluster([PRIVATE] * 3, replication=SLOW_SYNC)
    cluster.run_for(10)
    cluster.put(0, "private_keys", "fpr-alice", {"secret_key": b"alice"})
    cluster.run_for(10)
    n0 = cluster.nodes[0].node_id
    assert "private_keys" in cluster.nodes[1].membership.advertised_roots()[n0].roots
    cluster.nodes[1].set_tags({"private_keys": "false"}, cluster.now)
    cluster.run_for(2 * ROOTS_REFRESH_S)
    heard = cluster.nodes[1].membership.advertised_roots()[n0].roots
    assert "private_keys" not in heard and "groups" in heard


def test_a_dead_member_is_stale_with_its_last_root():
    cluster = Cluster([PRIVATE] * 3, replication=SLOW_SYNC)
    cluster.run_for(10)
    before = agreement(cluster, 0, "groups").groups[0].root
    cluster.crash(2)
    cluster.put(0, "groups", "sales", {"members": ["ann"]})
    cluster.run_for(30)  # long enough for n2 to be declared dead
    view = agreement(cluster, 1, "groups")
    assert grouping(cluster, 1, "groups") == {frozenset({"n0", "n1"})}
    assert [(s.holder.name, s.root) for s in view.stale] == [("n2", before)]
    assert view.groups[0].root != before


def test_a_quiet_cluster_advertises_once_per_pair_and_refresh():
    cluster = Cluster([PRIVATE] * 3, replication=SLOW_SYNC)
    cluster.run_for(10)

    def sent():
        return sum(n.statistics()["membership_roots_sent"] for n in cluster.nodes)

    start = sent()
    cluster.run_for(5 * ROOTS_REFRESH_S)
    pairs = 3 * 2
    # Each ordered pair re-sends at most once per refresh interval (and per probe that
    # happens to fall at the end of one): a bounded, small cost when nothing changes.
    assert sent() - start <= pairs * (5 + 1)
    assert sent() - start >= pairs * 3  # and the refresh does happen


def test_an_advertisement_is_small():
    cluster = Cluster([PRIVATE] * 2, replication=SLOW_SYNC)
    cluster.run_for(10)
    peer = cluster.nodes[1].node_id
    roots = cluster.nodes[0].membership._adverts.advert_for(
        peer, cluster.nodes[0].membership._table.members[peer], cluster.now + 99)
    assert 8 <= len(roots) <= 12
    with_roots = PEER_MESSAGES.encode(Ping(1, b"\x01" * 32, "h", 1, Updates(), roots))
    without = PEER_MESSAGES.encode(Ping(1, b"\x01" * 32, "h", 1, Updates()))
    assert len(with_roots) - len(without) <= 40 * len(roots)  # a few bytes per dataset


# ---- untrusted input, at the membership core ---------------------------------------------------


def two_members():
    cluster = VirtualCluster(MembershipConfig(), seed=7)
    a = cluster.add("node-a", root_datasets=("groups", "keyservers"))
    b = cluster.add("node-b", root_datasets=("groups", "keyservers"))
    cluster.join(b, [a.local_member.address])
    assert cluster.run_until_true(lambda: len(a.members()) == len(b.members()) == 2,
                                  cluster.now + 10)
    return cluster, a, b


def root(byte: int) -> bytes:
    return bytes([byte]) * 8


@pytest.mark.parametrize("roots", [
    (DatasetRoot("groups", b"\x01" * 7, 0),),  # too short
    (DatasetRoot("groups", root(1), -1),),  # negative age
    (DatasetRoot("groups", root(1), 2**41),),  # older than any clock
    (DatasetRoot("keyservers", root(1), 0), DatasetRoot("groups", root(1), 0)),  # unsorted
    (DatasetRoot("groups", root(1), 0), DatasetRoot("groups", root(2), 0)),  # twice
    (DatasetRoot("", root(1), 0),),
    (DatasetRoot("g\n", root(1), 0),),
    (DatasetRoot("x" * 65, root(1), 0),),
    tuple(DatasetRoot(f"d{i:03d}", root(1), 0) for i in range(33)),  # too many
    ("groups",),
])
def test_malformed_roots_are_refused_before_anything_changes(roots):
    cluster, a, b = two_members()
    sender = b.local_member.node_id
    with pytest.raises(RemoteProtocolError):
        a.receive(sender, PushPull(False, Updates(), roots), cluster.now)
    assert sender not in a.advertised_roots() or a.advertised_roots()[sender].roots.get(
        "groups") != root(1)


def test_unknown_datasets_are_dropped_and_counted_and_nobody_speaks_for_another():
    cluster, a, b = two_members()
    sender = b.local_member.node_id
    roots = (DatasetRoot("groups", root(5), 1000), DatasetRoot("nonsense", root(6), 0))
    a.receive(sender, PushPull(False, Updates(), roots), cluster.now)
    advertised = a.advertised_roots()[sender]
    assert advertised.roots == {"groups": (root(5), cluster.now - 1.0)}
    assert a.statistics()["roots_unknown"] == 1
    # A stranger's roots are not kept (it is no member), nor does it name whose they are.
    stranger = random.Random(3).randbytes(32)
    a.receive(stranger, PushPull(False, Updates(), roots), cluster.now)
    assert stranger not in a.advertised_roots()
    # An older change does not turn the view back (another connection overtaken).
    a.receive(sender, PushPull(False, Updates(), (DatasetRoot("groups", root(7), 60_000),)),
              cluster.now)
    assert a.advertised_roots()[sender].roots["groups"][0] == root(5)


def test_what_this_node_holds_whole_is_worked_out_again_only_when_its_own_part_changes(
        monkeypatch):
    # refresh runs after every input, and the view changes at every membership change:
    # which datasets this node holds whole depends only on the policy and its own member
    # view, so other members' comings and goings must not re-evaluate it.
    from gossipnode.core.scopes import ScopeView

    cluster = Cluster([PRIVATE] * 4)
    cluster.run_for(10)
    asked: list[bytes] = []
    original = ScopeView.holds_whole
    # A node asking about itself (others ask about it too: which roots it may hear).
    monkeypatch.setattr(ScopeView, "holds_whole",
                        lambda view, node_id, dataset: (
                            node_id == view.self_id and asked.append(node_id))
                        or original(view, node_id, dataset))
    cluster.partition([0, 1], [2, 3])  # others are suspected, declared dead, come back
    cluster.run_for(60)
    cluster.heal()
    cluster.run_for(30)
    node_0 = cluster.nodes[0].node_id
    assert asked.count(node_0) == 0
    cluster.put(0, "groups", "sales", {"members": ["ann"]})  # still advertised as before
    cluster.run_for(5)
    assert grouping(cluster, 1, "groups") == {frozenset({"n0", "n1", "n2", "n3"})}
