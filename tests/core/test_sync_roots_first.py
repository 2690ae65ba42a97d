"""Digest roots first: a peer's return (a false suspicion refuted) and a join bring an
exchange of roots before any reconciliation, so that data that agrees costs no session and
data that differs is reconciled at once (sync.py rule 8, immediate_rounds.py rule 5,
membership/roots.py rules 7 and 8)."""

from gossipnode.config import ReplicationConfig
from gossipnode.core.membership import ALIVE, SUSPECT
from gossipnode.core.membership.messages import Ack, PushPull
from gossipnode.core.reconcile_messages import ReconcileOpen
from gossipnode.core.replication import Push
from gossipnode.core.sync import REVIVED_GRACE_S
from tests.core.node_harness import LATENCY_S, Cluster

ALL = {"wep": False, "private_keys": True}
NO_PRIVATE = {"wep": False, "private_keys": False}
# Regular rounds far apart: what opens within seconds of a return is the immediate round's
# (and its follow-up's) doing.
SLOW = ReplicationConfig(anti_entropy_interval_s=120.0)
STEP_S = 0.001
# The datasets whose roots members compare, written out (the catalog's `all`-scope and
# administrative datasets, and private keys): what a member granted everything may hear.
EVERY_ROOT = {
    "consumers", "private_keys", "groups", "mail_settings", "directory_sync", "org_keys",
    "ignition_keys", "trusted_keys", "keyservers", "learn_mode", "verified_directory",
    "cluster_policy",
}


def opened(cluster, mark):
    return [(a, b, m.dataset) for a, b, m in cluster.sent[mark:] if isinstance(m, ReconcileOpen)]


def falsely_suspect(cluster, accuser, subject, *, also_drop=lambda message: False):
    """Lose `subject`'s acks to `accuser` until `accuser` suspects it, then let everything
    through (but what `also_drop` names): `subject` hears the suspicion and refutes. Returns
    the send index at the suspicion and the moment `accuser` held `subject` alive again."""
    subject_id = cluster.nodes[subject].node_id
    accuser_node = cluster.nodes[accuser]
    losing = [True]
    cluster.dropping = lambda sender, target, message: also_drop(message) or (
        losing[0] and (sender, target) == (subject, accuser) and isinstance(message, Ack))
    for _ in range(int(10 / STEP_S)):
        cluster.run_for(STEP_S)
        if accuser_node.membership.states()[subject_id] == SUSPECT:
            break
    assert accuser_node.membership.states()[subject_id] == SUSPECT
    losing[0] = False
    mark = len(cluster.sent)
    for _ in range(int(10 / STEP_S)):
        cluster.run_for(STEP_S)
        if accuser_node.membership.states()[subject_id] == ALIVE:
            return mark, cluster.now
    raise AssertionError("the suspicion was not refuted")


def test_a_false_suspicion_refuted_between_members_whose_data_agrees_opens_no_session():
    cluster = Cluster([ALL, ALL], replication=SLOW)
    cluster.run_for(5)
    rounds_before = cluster.nodes[0].statistics()["revived_rounds"]
    mark, _ = falsely_suspect(cluster, 0, 1)
    cluster.run_for(5)  # the immediate round, its follow-up round, and more
    assert cluster.nodes[0].statistics()["revived_rounds"] == rounds_before + 1  # it ran
    assert opened(cluster, mark) == []


def test_a_false_suspicion_refuted_between_members_whose_data_differs_opens_one_at_once():
    cluster = Cluster([ALL, ALL], replication=SLOW)
    cluster.run_for(5)
    # The subject writes, and its pushes are lost: only a session can bring the record.
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    cluster.put(1, "consumers", "while-suspected", {"n": 1})
    mark, back_at = falsely_suspect(cluster, 0, 1,
                                    also_drop=lambda message: isinstance(message, Push))
    opened_at = None
    for _ in range(int(1 / STEP_S)):
        cluster.run_for(STEP_S)
        if opened(cluster, mark):
            opened_at = cluster.now
            break
    # At once (the higher node id of the pair waits its grace for the lower one's session),
    # within a few message latencies: the roots asked for and their answer, then the opening.
    assert opened_at is not None and opened_at - back_at <= REVIVED_GRACE_S + 4 * LATENCY_S
    cluster.run_for(2)
    # Only the dataset that differs (the others' roots were heard equal first).
    assert {dataset for _, _, dataset in opened(cluster, mark)} == {"consumers"}
    assert "while-suspected" in cluster.records(0, "consumers")


def roots_named(cluster, sender, target, kind):
    names = set()
    for a, b, message in cluster.sent:
        if (a, b) == (sender, target) and isinstance(message, kind):
            names |= {root.dataset for root in message.roots}
    return names


def join_exchange(seed_tags, joiner_tags):
    """A seed and a joiner, until the joiner's push-pull exchange with the seed is over (a
    few latencies: no ping has gone either way yet)."""
    cluster = Cluster([seed_tags, joiner_tags])
    cluster.run_for(4 * LATENCY_S)
    assert cluster.nodes[1].membership.states()[cluster.nodes[0].node_id] == ALIVE
    return cluster


def test_a_joiners_push_pull_tells_its_seed_every_root_the_seed_may_hear():
    cluster = join_exchange(ALL, ALL)
    assert roots_named(cluster, 1, 0, PushPull) == EVERY_ROOT
    assert roots_named(cluster, 0, 1, PushPull) == EVERY_ROOT


def test_a_joiners_push_pull_names_no_private_keys_root_to_a_seed_not_granted_them():
    cluster = join_exchange(NO_PRIVATE, ALL)
    assert roots_named(cluster, 1, 0, PushPull) == EVERY_ROOT - {"private_keys"}
    assert roots_named(cluster, 0, 1, PushPull) == EVERY_ROOT - {"private_keys"}


def test_a_seed_names_no_private_keys_root_to_a_joiner_not_granted_them():
    cluster = join_exchange(ALL, NO_PRIVATE)
    assert roots_named(cluster, 0, 1, PushPull) == EVERY_ROOT - {"private_keys"}
    assert roots_named(cluster, 1, 0, PushPull) == EVERY_ROOT - {"private_keys"}
