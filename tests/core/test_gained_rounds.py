"""Rounds for what a new scope view gives a member (core/sync.py rule 9, core/gained_rounds.py),
in the core, on virtual time, in a cluster governed by an administrator key whose regular
rounds run hourly: a member admitted, granted private keys, or reseeded holds what it gained
within seconds, without a `repair` and without waiting for anyone's regular round; a view that
gives nothing starts no session.

Expected values are literal: the keys written, the grants given, the sessions counted.
"""

from __future__ import annotations

from gossipnode.config import ReplicationConfig
from gossipnode.core.reconcile_messages import ReconcileOpen
from gossipnode.core.records import Version
from gossipnode.core.replication import Push
from tests.core.node_harness import Cluster
from tests.core.test_authority import sign_record

# No regular round within a test: the first falls half an interval or more after the start.
HOURLY = ReplicationConfig(anti_entropy_interval_s=3600.0, tombstone_grace_s=7200.0)
PRIVATE = {"private_keys": True}
WEP = {"private_keys": False, "wep": True}
MAILBOXES = {f"box{n:02}" for n in range(30)}
GROUPS = {f"g{n}" for n in range(12)}
KEYS = {f"fpr-{n}" for n in range(8)}
NEW = 2  # the member that gains something


def grant(cluster: Cluster, index: int, *, via: tuple[int, ...] = (0,), **grants: bool) -> None:
    """What `gossipnode grant` does, on the members `via`: sign with the administrator key,
    store."""
    admin_id, admin_sign = cluster.admin
    value = {"admitted": True, "private_keys": False, "wep": False, **grants}
    version = Version(int(cluster.now * 1000) + 1, 0, admin_id)
    key = "grant/" + cluster.nodes[index].node_id.hex()
    record = sign_record(admin_sign, "cluster_policy", key, value, version)
    for member in via:
        cluster.nodes[member].write_signed(record, cluster.now)
        cluster._collect(member)


def openings(cluster: Cluster, since: int, *, to: int | None = None) -> list[tuple[int, int]]:
    """(from, to) of every session opening sent since `cluster.sent[since]`."""
    return [(a, b) for a, b, m in cluster.sent[since:]
            if isinstance(m, ReconcileOpen) and (to is None or b == to)]


def written(cluster: Cluster) -> None:
    """Member 0 writes the groups and the private keys."""
    for key in sorted(GROUPS):
        cluster.put(0, "groups", key, {"name": key})
    for key in sorted(KEYS):
        cluster.put(0, "private_keys", key, {"secret_key": key.encode()})


def all_granted_and_written() -> Cluster:
    """A governed cluster of three, every member granted private keys, the writes of
    `written` made and spread (hourly rounds)."""
    cluster = Cluster([PRIVATE] * 3, administrated=True, replication=HOURLY)
    for index in range(3):
        grant(cluster, index, private_keys=True)
    cluster.run_for(5)
    written(cluster)
    cluster.run_for(5)
    return cluster


def test_members_admitted_together_hold_what_was_written_before_within_seconds():
    """`admin adopt` on a governed cluster that knew no grant: everyone is admitted at once,
    so nobody comes alive anew (everyone was already in every member table: authorization.py
    rule 7), and only anti-entropy can bring what was written before."""
    cluster = Cluster([PRIVATE] * 3, administrated=True, replication=HOURLY)
    cluster.run_for(5)
    for key in sorted(GROUPS):  # no private keys: nobody may hold them yet
        cluster.put(0, "groups", key, {"name": key})
    cluster.run_for(5)
    assert cluster.records(1, "groups") == {} and cluster.records(NEW, "groups") == {}

    since = len(cluster.sent)
    for index in range(3):
        grant(cluster, index, private_keys=True)
    cluster.run_for(3)
    for index in (1, NEW):
        assert set(cluster.records(index, "groups")) == GROUPS
    assert openings(cluster, since)  # by anti-entropy: nobody pushed them
    pushed = {r.key for a, b, m in cluster.sent[since:] if isinstance(m, Push)
              for r in m.records}
    assert pushed.isdisjoint(GROUPS)


def test_a_member_admitted_after_the_writes_holds_them_within_seconds():
    """A newcomer admitted into a governed cluster. Its peers take it into their member
    tables then, a return, and reconcile with it at once (sync.py rule 4); here its grant
    reaches it only 2 s later (whatever carries it is lost until then, and the push is sent
    again), so those sessions find it not admitted by its own view and move nothing else,
    as when the sessions race the grant between real agents. The round its own admission
    starts brings the writes, with no `repair` and no regular round."""
    cluster = Cluster([PRIVATE] * 3, administrated=True, replication=HOURLY)
    grant(cluster, 0, private_keys=True)
    grant(cluster, 1, private_keys=True)
    cluster.run_for(5)
    written(cluster)
    cluster.run_for(5)
    assert set(cluster.records(1, "groups")) == GROUPS
    assert cluster.records(NEW, "groups") == {}

    late = cluster.now + 1.9
    cluster.dropping = lambda sender, target, message: (
        target == NEW and cluster.now < late
        and any(r.dataset == "cluster_policy" for r in getattr(message, "records", ())))
    grant(cluster, NEW)
    cluster.run_for(1.8)
    assert cluster.records(NEW, "cluster_policy") == {}
    assert cluster.records(NEW, "groups") == {}
    cluster.run_for(2.2)  # the push is sent again at 2 s
    assert len(cluster.records(NEW, "cluster_policy")) == 3
    assert set(cluster.records(NEW, "groups")) == GROUPS
    assert cluster.records(NEW, "private_keys") == {}  # admitted, not granted private keys


def test_a_member_granted_private_keys_later_gets_the_existing_ones_at_once():
    cluster = Cluster([PRIVATE] * 3, administrated=True, replication=HOURLY)
    grant(cluster, 0, private_keys=True)
    grant(cluster, 1, private_keys=True)
    grant(cluster, NEW)
    cluster.run_for(5)
    written(cluster)
    cluster.run_for(5)
    assert set(cluster.records(NEW, "groups")) == GROUPS  # pushed: it was admitted
    assert cluster.records(NEW, "private_keys") == {}

    grant(cluster, NEW, private_keys=True)
    cluster.run_for(3)
    assert set(cluster.records(NEW, "private_keys")) == KEYS


def test_a_member_granted_wep_gets_the_mailboxes_it_now_owns_at_once():
    """Three WEP members, three replicas: a member granted WEP becomes an owner of every
    mailbox beside the two that hold them, and neither loses one, so no handoff carries
    them: the round its grant brings forward does."""
    cluster = Cluster([WEP] * 3, administrated=True, replication=HOURLY)
    admin_id, admin_sign = cluster.admin
    policy = sign_record(admin_sign, "cluster_policy", "wep",
                         {"replication": True, "replicas": 3},
                         Version(int(cluster.now * 1000), 0, admin_id))
    cluster.nodes[0].write_signed(policy, cluster.now)
    cluster._collect(0)
    grant(cluster, 0, wep=True)
    grant(cluster, 1, wep=True)
    grant(cluster, NEW)
    cluster.run_for(5)
    for key in sorted(MAILBOXES):
        cluster.put(0, "web_messenger", key, {"owner": key})
    cluster.run_for(5)
    assert set(cluster.records(1, "web_messenger")) == MAILBOXES
    assert cluster.records(NEW, "web_messenger") == {}

    grant(cluster, NEW, wep=True)
    cluster.run_for(3)
    assert set(cluster.records(NEW, "web_messenger")) == MAILBOXES


def test_a_reseeded_member_fills_again_within_seconds_by_itself():
    cluster = all_granted_and_written()
    grants = {"grant/" + node.node_id.hex() for node in cluster.nodes}
    assert set(cluster.records(NEW, "cluster_policy")) == grants
    assert set(cluster.records(NEW, "private_keys")) == KEYS

    since = len(cluster.sent)
    cluster.nodes[NEW].reseed(cluster.now)
    cluster._collect(NEW)
    assert cluster.records(NEW, "groups") == {}
    cluster.run_for(3)
    assert set(cluster.records(NEW, "cluster_policy")) == grants
    assert set(cluster.records(NEW, "groups")) == GROUPS
    assert set(cluster.records(NEW, "private_keys")) == KEYS
    # By its own sessions: nobody else opened one with it, nor pushed it anything.
    assert openings(cluster, since, to=NEW) == []
    assert [m for a, b, m in cluster.sent[since:] if b == NEW and isinstance(m, Push)] == []
    assert {a for a, _ in openings(cluster, since)} == {NEW}


def test_a_view_that_gives_nothing_new_starts_no_session():
    cluster = all_granted_and_written()
    assert set(cluster.records(NEW, "private_keys")) == KEYS

    since = len(cluster.sent)
    grant(cluster, 1, private_keys=True)  # the same grants, signed anew
    cluster.run_for(5)
    grant(cluster, NEW)  # private keys revoked: a loss, not a gain
    cluster.run_for(5)
    assert cluster.nodes[NEW].status(cluster.now).private_keys_eligible is False
    assert openings(cluster, since) == []
    # The control's counterpart: the grant given back starts a round at once.
    grant(cluster, NEW, private_keys=True)
    cluster.run_for(3)
    assert {a for a, _ in openings(cluster, since)} == {NEW}


def test_grants_that_come_and_go_start_a_bounded_number_of_rounds():
    """Private keys granted and revoked every 0.1 s for 2 s: ten gains. Rounds for a gain
    come at most once a second (GAINED_ROUND_GAP_S, 1 s), each with a follow-up: the member
    opens a handful of private-keys sessions, not one per gain."""
    cluster = Cluster([PRIVATE] * 3, administrated=True, replication=HOURLY)
    for index in range(3):
        grant(cluster, index, private_keys=index != NEW)
    cluster.run_for(5)
    written(cluster)
    cluster.run_for(5)
    opened: list[float] = []
    start = cluster.now

    def log(sender, target, message):
        if (sender == NEW and isinstance(message, ReconcileOpen)
                and message.dataset == "private_keys"):
            opened.append(round(cluster.now - start, 3))
        return False

    cluster.dropping = log
    for flip in range(20):
        grant(cluster, NEW, private_keys=flip % 2 == 0)
        cluster.run_for(0.1)
    cluster.run_for(3)
    assert cluster.nodes[NEW].status(cluster.now).private_keys_eligible is False
    assert 1 <= len(opened) <= 5, opened


def test_a_member_that_turns_its_own_private_keys_tag_on_gets_the_existing_ones_at_once():
    """An open cluster: nothing but the member's own tag changes, in its own view (no policy
    change, no other member's): that alone is a gain (rule 2)."""
    cluster = Cluster([PRIVATE, PRIVATE, {"private_keys": False}], replication=HOURLY)
    cluster.run_for(5)
    written(cluster)
    cluster.run_for(5)
    assert set(cluster.records(1, "private_keys")) == KEYS
    assert cluster.records(NEW, "private_keys") == {}

    since = len(cluster.sent)
    cluster.nodes[NEW].set_tags({"private_keys": "true"}, cluster.now)
    cluster._collect(NEW)
    cluster.run_for(3)
    assert set(cluster.records(NEW, "private_keys")) == KEYS
    assert {a for a, _ in openings(cluster, since)} == {NEW}  # its own round brought them
