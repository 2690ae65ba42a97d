"""No resurrection (docs/architecture.md invariant 5) against a lying member, in the core, on
virtual time. A private key is written, the liar keeps a copy (it holds the grant, so the
copy is what an honest member held), the key is deleted, and the grace period passes: the
tombstone is collected on every honest member. The liar then replays its copy, by a push, in
a session it opens, and in its answer to a session the victim opens. The honest members
must not take the key back; a member that never held the dataset long enough to have seen
the delete (new, reseeded) still fills from old records, and an update of a record held at
an older version still applies.

Expected values are literal: the keys written and deleted, the counts of refusals.
"""

from __future__ import annotations

import pytest

from gossipnode.config import ReplicationConfig
from gossipnode.core.events import PeerRefused, SyncCompleted
from gossipnode.core.reconcile_messages import (
    FINGERPRINT,
    Entry,
    ReconcileAbort,
    ReconcileOpen,
    ReconcileTurn,
    encode_entry,
)
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push, PushAck
from gossipnode.core.store import MemoryStore
from gossipnode.wire.cbor import encode_value
from tests.core import test_containment_liar as liars
from tests.core.node_harness import Cluster
from tests.core.test_containment_liar import (
    HONEST,
    LIAR,
    PRIVATE_KEYS,
    VICTIM,
    Liar,
    grant,
    liar_answer,
)

GRACE_S = 1800.0
# Tombstones are collected every tenth of the grace period (core/lifecycle.py): a test that
# waits GRACE_S + COLLECTED_AFTER_S after a delete sees it collected on every member.
COLLECTED_AFTER_S = GRACE_S / 10 + 60
# No regular round within a test unless it runs one (the liar cluster's configuration).
REPLICATION = ReplicationConfig(anti_entropy_interval_s=1700.0, tombstone_grace_s=GRACE_S)
REVOKED = "pk-00"  # the key the liar keeps a copy of, then deleted
SPARE = "pk-01"  # never deleted: held everywhere


def cluster_with_liar() -> tuple[Cluster, Liar]:
    # The liar held the keys by right.
    cluster, liar = liars.liar_cluster(replication=REPLICATION, private_keys=True)
    assert cluster.configs[VICTIM].replication.tombstone_grace_s == GRACE_S
    return cluster, liar


def pass_time(cluster: Cluster, seconds: float) -> None:
    """Run `seconds` of virtual time, the two honest members reconciling every 600 s (so
    that neither is quarantined: their rounds may draw the liar, whose sessions stall)."""
    for _ in range(int(seconds // 600)):
        cluster.nodes[VICTIM].repair(cluster.now, peer=cluster.nodes[HONEST].node_id)
        cluster._collect(VICTIM)
        cluster.run_for(600)
    cluster.run_for(seconds % 600)


def live_keys(cluster: Cluster, index: int, dataset: str = "private_keys") -> set[str]:
    return {r.key for r in cluster.stores[index].replicated(dataset) if r.value is not None}


def all_keys(cluster: Cluster, index: int, dataset: str = "private_keys") -> set[str]:
    return {r.key for r in cluster.stores[index].replicated(dataset)}


def revoked_and_collected(cluster: Cluster) -> Record:
    """Delete REVOKED (the liar keeps its copy) and wait until its tombstone is collected on
    both honest members; returns the copy."""
    kept = next(r for r in cluster.stores[HONEST].replicated("private_keys")
                if r.key == REVOKED)
    cluster.delete(VICTIM, "private_keys", REVOKED)
    pass_time(cluster, 10)
    assert REVOKED in all_keys(cluster, HONEST) - live_keys(cluster, HONEST)  # a tombstone
    pass_time(cluster, GRACE_S + COLLECTED_AFTER_S)
    for index in (VICTIM, HONEST):
        assert cluster.nodes[index].status(cluster.now).quarantined is False
        assert REVOKED not in all_keys(cluster, index)  # not even a tombstone
        assert SPARE in live_keys(cluster, index)
    return kept


def refusals(cluster: Cluster, index: int, since: int = 0) -> list[str]:
    return [e.reason for i, e in cluster.reported[since:]
            if i == index and isinstance(e, PeerRefused)]


@pytest.mark.parametrize("liar_granted", [True, False])
def test_a_deleted_private_key_pushed_again_after_collection_stays_deleted(liar_granted):
    """Granted, the liar could write the key anew under its own name; its grant revoked
    (after it kept the copy), the replay is its only way to bring back a key that the
    victim, still granted, signed."""
    cluster, liar = cluster_with_liar()
    kept = revoked_and_collected(cluster)
    if not liar_granted:
        grant(cluster, LIAR)  # admitted only
        cluster.run_for(1)
    liar.inbox.clear()
    liar.send(Push(901, (kept,)), to=VICTIM)
    liar.send(Push(902, (kept,)), to=HONEST)
    cluster.run_for(5)
    for index in (VICTIM, HONEST):
        assert REVOKED not in all_keys(cluster, index)
        assert cluster.nodes[index].statistics()["replays_refused"] == 1
    # The answer is the one a held key gets (admission.py rule 6): nothing refused.
    acks = sorted((m.push_id, m.refused) for _, _, m in liar.inbox if isinstance(m, PushAck))
    assert acks == [(901, ()), (902, ())]


def test_a_deleted_private_key_in_a_session_the_liar_opens_stays_deleted():
    cluster, liar = cluster_with_liar()
    kept = revoked_and_collected(cluster)
    liar.inbox.clear()
    session = liar.open("private_keys", 1000)  # a root that matches nothing: the victim splits
    cluster.run_for(0.1)
    (turn,) = liar.replies(session)
    liar.send(ReconcileTurn(session, 2, False, liar_answer(turn), (kept,)))
    cluster.run_for(1)
    assert REVOKED not in all_keys(cluster, VICTIM)
    assert cluster.nodes[VICTIM].statistics()["replays_refused"] == 1


def test_a_deleted_private_key_in_the_liars_answer_to_a_session_stays_deleted():
    cluster, liar = cluster_with_liar()
    kept = revoked_and_collected(cluster)
    liar.inbox.clear()
    since = len(cluster.reported)
    started = cluster.nodes[VICTIM].repair(cluster.now, peer=liar.node_id,
                                           dataset="private_keys")
    cluster._collect(VICTIM)
    cluster.run_for(0.1)
    empty = Entry(None, FINGERPRINT, 0, 0)  # "I hold nothing but what I send: send me all"
    liar.send(ReconcileTurn(started.sessions[0], 1, False, encode_entry(b"", empty), (kept,)))
    cluster.run_for(1)
    assert REVOKED not in all_keys(cluster, VICTIM)
    assert cluster.nodes[VICTIM].statistics()["replays_refused"] == 1
    assert len(refusals(cluster, VICTIM, since)) == 1
    # The session ends as any other does: the refusal does not hold it open.
    ended = [e for i, e in cluster.reported[since:]
             if i == VICTIM and isinstance(e, SyncCompleted)]
    assert [(e.dataset, e.failure) for e in ended] == [("private_keys", None)]


# --- what must still work ---------------------------------------------------------------------


def test_an_update_of_a_key_held_at_an_older_version_still_applies():
    """Both records are older than the horizon: the one over a held key is an update (it
    wins by version), the one over a key held nowhere is refused."""
    cluster, liar = cluster_with_liar()
    revoked_and_collected(cluster)
    held = next(r for r in cluster.stores[VICTIM].replicated("private_keys") if r.key == SPARE)
    _, liar_sign = cluster.identities[LIAR]
    old = Version(held.version.wall_ms + 1, 0, liar.node_id)  # newer than held, still old
    update = liars.sign_record(liar_sign, "private_keys", SPARE, {"secret_key": b"v2"}, old)
    never = liars.sign_record(liar_sign, "private_keys", "pk-never", {"secret_key": b"n"}, old)
    liar.send(Push(903, (update, never)))
    cluster.run_for(1)
    stored = {r.key: r for r in cluster.stores[VICTIM].replicated("private_keys")}
    assert stored[SPARE].version == old
    assert stored[SPARE].value == encode_value({"secret_key": b"v2"})
    assert "pk-never" not in stored
    assert cluster.nodes[VICTIM].statistics()["replays_refused"] == 1


def test_a_reseeded_member_fills_from_old_records():
    cluster, _ = cluster_with_liar()
    revoked_and_collected(cluster)
    victim = cluster.nodes[VICTIM]
    victim.reseed(cluster.now)
    cluster._collect(VICTIM)
    assert live_keys(cluster, VICTIM) == set()
    # Member 1's rounds refill it: the grants first (a reseed dropped them too, and a member
    # that knows no grant only answers for them: digests.py rule 2), then the rest.
    for _ in range(2):
        cluster.nodes[HONEST].repair(cluster.now, peer=victim.node_id)
        cluster._collect(HONEST)
        cluster.run_for(5)
    # Every key written more than the grace period ago comes back but the deleted one.
    assert live_keys(cluster, VICTIM) == set(PRIVATE_KEYS) - {REVOKED}
    assert live_keys(cluster, VICTIM, "consumers") == set(liars.CONSUMERS)
    assert victim.statistics().get("replays_refused", 0) == 0


def open_cluster_past_the_grace() -> Cluster:
    """An open cluster of three that wrote g0-g9, deleted g0, and reconciled past the grace
    period: every member settled in `groups`, g0's tombstone collected everywhere."""
    everything = {"wep": False, "private_keys": True}
    cluster = Cluster([everything] * 3, replication=REPLICATION)
    cluster.run_for(5)
    for n in range(10):
        cluster.put(0, "groups", f"g{n}", {"n": n})
    cluster.delete(0, "groups", "g0")
    cluster.run_for(5)
    assert live_keys(cluster, 2, "groups") == {f"g{n}" for n in range(1, 10)}
    for _ in range(int((GRACE_S + COLLECTED_AFTER_S) // 600) + 1):
        for index in (1, 2):
            cluster.nodes[0].repair(cluster.now, peer=cluster.nodes[index].node_id)
            cluster._collect(0)
        cluster.run_for(600)
    assert all_keys(cluster, 1, "groups") == {f"g{n}" for n in range(1, 10)}  # collected
    return cluster


def refill_from_member_0(cluster: Cluster) -> None:
    cluster.nodes[2].repair(cluster.now, peer=cluster.nodes[0].node_id)
    cluster._collect(2)
    cluster.run_for(5)
    assert live_keys(cluster, 2, "groups") == {f"g{n}" for n in range(1, 10)}
    assert cluster.nodes[2].statistics().get("replays_refused", 0) == 0


def test_a_new_member_fills_from_old_records():
    """An open cluster of three; member 2 is replaced by a fresh store (a new member under
    the old identity) after the grace period: it takes every old record."""
    cluster = open_cluster_past_the_grace()
    cluster.crash(2)
    cluster.stores[2] = MemoryStore()
    cluster.restart(2, incarnation=2)
    cluster.run_for(5)  # its return brings an immediate round
    refill_from_member_0(cluster)


def test_a_member_reseeded_in_an_open_cluster_fills_from_old_records():
    """No view change follows a reseed in an open cluster (no grants to learn again): the
    reseed itself ends the member's settled state (replays.py rule 3: it forgets its first
    sync, and when it began to hold each dataset), or it would refuse every old record it
    pulls."""
    cluster = open_cluster_past_the_grace()
    cluster.nodes[2].reseed(cluster.now)
    cluster._collect(2)
    assert live_keys(cluster, 2, "groups") == set()
    refill_from_member_0(cluster)


def test_a_member_that_refused_a_replay_stays_in_step_with_the_honest_ones():
    """After the refusal, writes the victim misses (their pushes to it lost) reach it by
    reconciliation with member 1, and both end with the same records and the same root; a
    second session the liar answers with the same record ends like the first."""
    cluster, liar = cluster_with_liar()
    kept = revoked_and_collected(cluster)
    liar.send(Push(904, (kept,)))
    cluster.run_for(1)
    dropping = cluster.dropping
    cluster.dropping = lambda sender, target, message: (
        dropping(sender, target, message) or (target == VICTIM and isinstance(message, Push)))
    cluster.put(HONEST, "private_keys", "pk-new", {"secret_key": b"new"})
    cluster.delete(HONEST, "private_keys", PRIVATE_KEYS[2])
    cluster.run_for(1)
    assert "pk-new" not in all_keys(cluster, VICTIM)
    cluster.dropping = dropping
    since = len(cluster.reported)
    cluster.nodes[VICTIM].repair(cluster.now, peer=cluster.nodes[HONEST].node_id,
                                 dataset="private_keys")
    cluster._collect(VICTIM)
    cluster.run_for(5)
    expected = (set(PRIVATE_KEYS) - {REVOKED, PRIVATE_KEYS[2]}) | {"pk-new"}
    for index in (VICTIM, HONEST):
        assert live_keys(cluster, index) == expected
        assert all_keys(cluster, index) == expected | {PRIVATE_KEYS[2]}  # its tombstone
    roots = [{d.name: d.digest for d in cluster.nodes[i].status(cluster.now).datasets}
             for i in (VICTIM, HONEST)]
    assert roots[0] == roots[1]
    assert not refusals(cluster, VICTIM, since)  # nothing refused from the honest member
    # The liar's copy again, in its answer to a session: refused again, the session ends.
    for attempt in (1, 2):
        since = len(cluster.reported)
        started = cluster.nodes[VICTIM].repair(cluster.now, peer=liar.node_id,
                                               dataset="private_keys")
        cluster._collect(VICTIM)
        cluster.run_for(0.1)
        empty = encode_entry(b"", Entry(None, FINGERPRINT, 0, 0))
        liar.send(ReconcileTurn(started.sessions[0], 1, False, empty, (kept,)))
        cluster.run_for(1)
        ended = [(e.dataset, e.failure) for i, e in cluster.reported[since:]
                 if i == VICTIM and isinstance(e, SyncCompleted)]
        assert ended == [("private_keys", None)]
        assert cluster.nodes[VICTIM].statistics()["replays_refused"] == 1 + attempt
    assert REVOKED not in all_keys(cluster, VICTIM)


def test_a_restart_keeps_the_refusal():
    """When the victim began to hold each dataset, and its first sync, are kept in its store:
    a restart does not make it a newcomer that takes old records."""
    cluster, liar = cluster_with_liar()
    kept = revoked_and_collected(cluster)
    cluster.crash(VICTIM)
    cluster.restart(VICTIM, incarnation=2)
    cluster.run_for(5)
    liar.send(Push(905, (kept,)))
    cluster.run_for(1)
    assert REVOKED not in all_keys(cluster, VICTIM)
    assert cluster.nodes[VICTIM].statistics()["replays_refused"] == 1


def test_a_member_granted_private_keys_again_takes_old_ones():
    """Member 1 loses its private-keys grant and holds none of them meanwhile (it hands them
    off to the victim, which wrote them and keeps its grant, so nobody re-signs them): granted
    again, it is not settled in them and takes the old keys to fill."""
    cluster, _ = cluster_with_liar()
    revoked_and_collected(cluster)
    grant(cluster, HONEST, wep=True)
    pass_time(cluster, 30)
    assert all_keys(cluster, HONEST) == set()
    grant(cluster, HONEST, private_keys=True, wep=True)
    cluster.run_for(1)
    cluster.nodes[VICTIM].repair(cluster.now, peer=cluster.nodes[HONEST].node_id,
                                 dataset="private_keys")
    cluster._collect(VICTIM)
    cluster.run_for(5)
    assert live_keys(cluster, HONEST) == set(PRIVATE_KEYS) - {REVOKED}
    assert cluster.nodes[HONEST].statistics().get("replays_refused", 0) == 0


def test_a_member_whose_first_sync_came_late_still_takes_old_records():
    """Member 1 holds every dataset from its start, but completes its first reconciliation
    only shortly before the grace period is over (every data message is lost until then),
    and over one dataset: it is not settled yet, and takes an old record of another."""
    everything = {"wep": False, "private_keys": True}
    cluster = Cluster([everything] * 2, replication=REPLICATION)
    data = (Push, PushAck, ReconcileOpen, ReconcileTurn, ReconcileAbort)
    cluster.dropping = lambda sender, target, message: isinstance(message, data)
    cluster.run_for(5)
    cluster.put(0, "consumers", "c-early", {"n": 1})
    cluster.run_for(GRACE_S - 200)
    cluster.dropping = lambda sender, target, message: False
    cluster.nodes[1].repair(cluster.now, peer=cluster.nodes[0].node_id, dataset="groups")
    cluster._collect(1)
    cluster.run_for(5)
    cluster.dropping = lambda sender, target, message: isinstance(message, data)
    cluster.run_for(250)  # c-early is older than the horizon now
    cluster.dropping = lambda sender, target, message: False
    assert cluster.nodes[1].status(cluster.now).quarantined is False
    cluster.nodes[1].repair(cluster.now, peer=cluster.nodes[0].node_id, dataset="consumers")
    cluster._collect(1)
    cluster.run_for(5)
    assert live_keys(cluster, 1, "consumers") == {"c-early"}
    assert cluster.nodes[1].statistics().get("replays_refused", 0) == 0
