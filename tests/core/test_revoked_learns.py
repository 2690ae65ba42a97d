"""A member whose grant is revoked learns it (core/scopes.py rule 5), in the core, on virtual
time, in a cluster governed by an administrator key whose regular rounds run hourly: the
signed record that takes a grant away reaches the member it names within seconds, even when
it takes its admission away and its peers send it nothing else; the member then sees itself
as its peers see it, and hands off and purges the private keys it may no longer hold.

Expected values are literal: the keys written, the grants given and taken away.
"""

from __future__ import annotations

import pytest

from gossipnode.config import ReplicationConfig
from gossipnode.core.placement import ClusterPolicy
from gossipnode.core.scopes import MemberView, ScopeView
from tests.core.node_harness import Cluster
from tests.core.test_gained_rounds import grant

# No regular round within a test: the first falls half an interval or more after the start.
HOURLY = ReplicationConfig(anti_entropy_interval_s=3600.0, tombstone_grace_s=7200.0)
PRIVATE = {"private_keys": True}
KEYS = {f"fpr-{n}" for n in range(8)}
GROUPS = {f"g{n}" for n in range(6)}
MEMBERS = 5
REVOKED = 4  # the member whose grant is taken away
WRITER = 1  # the member the administrator writes the revocation at


def governed(members: int = MEMBERS, seed: int = 1) -> Cluster:
    """`members` members, each granted admission and private keys; member 0 writes KEYS and
    GROUPS, and REVOKED holds them (with hourly rounds and a fan-out of three, not every
    member of a larger cluster need hold every key)."""
    cluster = Cluster([PRIVATE] * members, administrated=True, replication=HOURLY, seed=seed)
    for index in range(members):
        grant(cluster, index, private_keys=True)
    cluster.run_for(5)
    for key in sorted(KEYS):
        cluster.put(0, "private_keys", key, {"secret_key": key.encode()})
    for key in sorted(GROUPS):
        cluster.put(0, "groups", key, {"name": key})
    cluster.run_for(5)
    assert set(cluster.records(REVOKED, "private_keys")) == KEYS
    return cluster


def test_a_member_whose_private_keys_grant_is_revoked_learns_it_and_purges_them():
    cluster = governed()
    revoked = cluster.nodes[REVOKED]
    assert revoked.status(cluster.now).private_keys_eligible is True

    grant(cluster, REVOKED, via=(WRITER,))  # admitted, private keys taken away
    cluster.run_for(3)
    assert revoked.status(cluster.now).private_keys_eligible is False
    assert revoked.policy.admitted(revoked.node_id) is True
    assert set(cluster.records(REVOKED, "private_keys")) == set()
    for index in range(REVOKED):  # held elsewhere, so the handoff could release them
        assert set(cluster.records(index, "private_keys")) == KEYS
    assert set(cluster.records(REVOKED, "groups")) == GROUPS  # it is still admitted


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_the_writer_pushes_a_revocation_to_its_subject_beyond_the_fan_out(seed):
    """Eight members, a fan-out of three: the writer's draw may leave the subject out, and
    here every forward of the revocation to it is lost. The writer's own push reaches it."""
    cluster = governed(members=8, seed=seed)
    revoked = cluster.nodes[REVOKED]
    subject = "grant/" + revoked.node_id.hex()

    def forward_lost(sender, target, message):
        return target == REVOKED and sender != WRITER and any(
            record.key == subject for record in getattr(message, "records", ()))

    cluster.dropping = forward_lost
    grant(cluster, REVOKED, via=(WRITER,))  # admitted, private keys taken away
    cluster.run_for(3)

    assert revoked.status(cluster.now).private_keys_eligible is False
    assert revoked.policy.admitted(revoked.node_id) is True
    assert set(cluster.records(REVOKED, "private_keys")) == set()
    held_elsewhere = set()
    for index in range(8):
        if index != REVOKED:
            held_elsewhere |= set(cluster.records(index, "private_keys"))
    assert held_elsewhere == KEYS


def test_a_member_whose_admission_is_revoked_learns_it_and_nothing_else():
    cluster = governed()
    revoked = cluster.nodes[REVOKED]
    assert revoked.policy.admitted(revoked.node_id) is True
    since = len(cluster.sent)

    grant(cluster, REVOKED, via=(WRITER,), admitted=False)
    cluster.run_for(1)
    later = len(cluster.sent)
    cluster.put(0, "groups", "after", {"name": "after"})
    cluster.run_for(3)

    assert revoked.policy.admitted(revoked.node_id) is False
    assert revoked.status(cluster.now).private_keys_eligible is False
    # Containment: from the revocation on, the only records it was sent are the one record
    # that names it, and what was written after it never reaches it.
    subject = ("cluster_policy", "grant/" + revoked.node_id.hex())
    sent_to_it = {(record.dataset, record.key) for _, target, message in cluster.sent[since:]
                  if target == REVOKED for record in getattr(message, "records", ())}
    assert subject in sent_to_it
    assert {(record.dataset, record.key) for _, target, message in cluster.sent[later:]
            if target == REVOKED for record in getattr(message, "records", ())} <= {subject}
    assert "after" not in cluster.records(REVOKED, "groups")
    assert "after" in cluster.records(WRITER, "groups")


def test_a_member_not_admitted_holds_the_records_about_it_and_nothing_else():
    """Scopes rule 5, literally: the grant and force-leave that name it, no other grant, not
    the WEP policy, no data; an admitted member holds every administrative record."""
    me, outsider, member = b"\x01" * 32, b"\xaa" * 32, b"\x03" * 32
    policy = ClusterPolicy(enforced=True, grants={
        me: frozenset({"admitted"}), member: frozenset({"admitted"})})
    members = {node_id: MemberView(node_id, name, "alive", {})
               for node_id, name in ((me, "me"), (outsider, "out"), (member, "in"))}
    view = ScopeView(me, members, policy)
    out_hex, in_hex = "aa" * 32, "03" * 32
    assert view.holds(outsider, "cluster_policy", "grant/" + out_hex) is True
    assert view.holds(outsider, "cluster_policy", "force_left/" + out_hex) is True
    assert view.holds(outsider, "cluster_policy", "grant/" + in_hex) is False
    # An upper-case id names nobody, for the policy (authority.py rule 3) as for rule 5.
    assert view.holds(outsider, "cluster_policy", "grant/" + out_hex.upper()) is False
    assert view.holds(outsider, "cluster_policy", "grant/zz") is False
    assert view.holds(outsider, "cluster_policy", "wep") is False
    assert view.holds(outsider, "groups", "grant/" + out_hex) is False
    assert view.holds(member, "cluster_policy", "grant/" + out_hex) is True
    assert view.holds(member, "cluster_policy", "wep") is True
    assert list(view.push_targets("cluster_policy", "grant/" + out_hex)) == [member, outsider]
    assert list(view.push_targets("cluster_policy", "grant/" + in_hex)) == [member]
    assert list(view.push_targets("groups", "g")) == [member]
