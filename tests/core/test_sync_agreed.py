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


def test_members_started_together_open_no_session_among_themselves_while_their_data_agrees():
    # The first exchange between two new members (a confirmation ping and its ack) carries
    # both ends' roots, and so does a joiner's push-pull with its seed (its reply to the
    # seed's answer), so the immediate round each return brings (rule 4) skips every
    # dataset, the seed's rounds with its joiners too.
    cluster = Cluster([ALL] * 10)
    cluster.run_for(5)
    assert all(len(node.membership.alive_members()) == 10 for node in cluster.nodes)
    assert opened(cluster, 0) == []
    assert sum(node.statistics()["sessions_skipped_agreed"] for node in cluster.nodes) > 0


def test_roots_reach_only_the_members_granted_their_dataset_even_on_the_first_exchange():
    # n2 does not hold private keys: no message to it ever names that dataset's root, from
    # its first confirmation ping on; the members that hold them tell each other.
    no_private = {"wep": False, "private_keys": False}
    cluster = Cluster([ALL, ALL, no_private, ALL])
    cluster.run_for(10)
    named = {}
    for _, target, message in cluster.sent:
        for root in getattr(message, "roots", ()) or ():
            named.setdefault(target, set()).add(root.dataset)
    assert "private_keys" not in named[2] and "groups" in named[2]
    assert all("private_keys" in named[i] for i in (0, 1, 3))
    n2 = cluster.nodes[2].membership
    assert all("private_keys" not in roots.roots for roots in n2.advertised_roots().values())


def test_a_member_that_claims_private_keys_against_the_policy_hears_no_private_keys_root():
    # n2 signs the private_keys tag, but the policy denies it: once the denial has spread,
    # no message to it names that root, though the root moves (a new private key is
    # written) and its holders keep telling each other.
    cluster = Cluster([ALL, ALL, ALL, ALL])
    cluster.run_for(5)
    cluster.policy(0, "private_keys/" + cluster.nodes[2].node_id.hex(), {"allow": False})
    cluster.run_for(5)
    mark = len(cluster.sent)
    cluster.put(1, "private_keys", "fpr", {"secret": b"k"})
    cluster.run_for(30)
    named = {}
    for _, target, message in cluster.sent[mark:]:
        for root in getattr(message, "roots", ()) or ():
            named.setdefault(target, set()).add(root.dataset)
    assert "groups" in named[2] and "private_keys" not in named[2]
    assert all("private_keys" in named[i] for i in (0, 1, 3))
    assert cluster.records(2, "private_keys") == {}
