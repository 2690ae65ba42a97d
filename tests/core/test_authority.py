"""Administrator-signed records, grants bound to node ids, admission and authorised writes,
in the core (core/authority.py, core/admission.py), with a test-controlled Byzantine member
that injects messages as if its channel had delivered them."""

import hashlib
import random

import pytest

from gossipnode.core.authority import Authority, signing_payload
from gossipnode.core.authorization import load_policy
from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.events import PeerRefused
from gossipnode.core.placement import Candidate, ClusterPolicy, mailbox_owners, wep_candidates
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push
from gossipnode.core.store import MemoryStore
from gossipnode.wire.cbor import decode_value, encode_value
from tests.core.membership.virtual_cluster import FakeSigning

from .node_harness import Cluster

PRIVATE = {"private_keys": True}
NO_PRIVATE = {"private_keys": False}


def sign_record(sign, dataset, key, value, version):
    encoded = None if value is None else encode_value(value)
    payload = signing_payload(dataset, key, version, encoded)
    return Record(dataset, key, encoded, version, sign(payload))


def admin_write(cluster, index, key, value, *, wall_ms=None):
    """What `gossipnode grant/admit` does: sign with the administrator key, then store."""
    admin_id, admin_sign = cluster.admin
    wall_ms = wall_ms or int(cluster.now * 1000)
    record = sign_record(admin_sign, "cluster_policy", key, value, Version(wall_ms, 0, admin_id))
    cluster.nodes[index].write_signed(record, cluster.now)
    cluster._collect(index)
    return record


def grant(cluster, index_granted, *, via=0, admitted=True, private_keys=False, wep=False):
    node_id = cluster.nodes[index_granted].node_id
    return admin_write(cluster, via, "grant/" + node_id.hex(),
                       {"admitted": admitted, "private_keys": private_keys, "wep": wep})


def node_ids(cluster):
    return [node.node_id for node in cluster.nodes]


def refusals(node):
    return [e for e in node.events() if isinstance(e, PeerRefused)]


def refused_from(core, peer, now):
    return next(p.refused_from_peer for p in core.status(now).peers if p.node_id == peer)


def records_sent_to(cluster, target):
    return [r for (_, to, m) in cluster.sent if to == target for r in getattr(m, "records", ())]


def test_the_signed_payload_is_the_documented_one():
    # An independent rendering of the payload: length-prefixed fields, BLAKE2b-512 of the value.
    origin = bytes(range(32))
    version = Version(0x0102030405, 7, origin)
    expected = b"".join(len(p).to_bytes(4, "big") + p for p in (
        b"gossipnode signed record v1", b"private_keys", b"ABCD",
        (0x0102030405).to_bytes(8, "big"), (7).to_bytes(4, "big"), origin,
        b"\x01" + hashlib.blake2b(b"value").digest(),
    ))
    assert signing_payload("private_keys", "ABCD", version, b"value") == expected
    tombstone = signing_payload("private_keys", "ABCD", version, None)
    assert tombstone.endswith((1).to_bytes(4, "big") + b"\x00")


def test_an_unadmitted_member_neither_receives_nor_gives_data_until_admitted():
    cluster = Cluster([PRIVATE] * 3, administrated=True)
    grant(cluster, 0)
    grant(cluster, 1)
    cluster.run_for(5)
    cluster.put(0, "groups", "sales", {"members": ["ann"]})
    cluster.put(2, "groups", "from-outsider", {"members": ["eve"]})
    cluster.run_for(10)
    assert set(cluster.records(1, "groups")) == {"sales"}
    assert set(cluster.records(2, "groups")) == {"from-outsider"}  # its own write only
    assert "from-outsider" not in cluster.records(0, "groups")
    assert records_sent_to(cluster, 2) == []  # not even the grants
    outsider = node_ids(cluster)[2]
    assert not cluster.nodes[0].admitted(outsider)
    # Not a member of the admitted ones either: it waits in their bounded pending set,
    # while it, admitted by nobody it knows of, keeps them all (to learn its grant).
    for index in (0, 1):
        membership = cluster.nodes[index].membership
        assert membership.member(outsider) is None
        assert outsider in [pending[0] for pending in membership.pending_members()]
        assert outsider not in cluster.nodes[index].withheld_from_peers()
    assert {m.node_id for m in cluster.nodes[2].membership.alive_members()} == set(
        node_ids(cluster))

    grant(cluster, 2)
    cluster.run_for(10)
    for index in range(3):
        assert set(cluster.records(index, "groups")) == {"sales", "from-outsider"}
        assert cluster.nodes[index].membership.member(outsider).state == "alive"
    assert cluster.nodes[2].admitted(outsider)


def test_no_grant_means_no_private_keys_even_with_the_tag():
    cluster = Cluster([PRIVATE] * 3, administrated=True)
    grant(cluster, 0, private_keys=True)
    grant(cluster, 1, private_keys=True)
    grant(cluster, 2)  # admitted, tagged private_keys=true, but no private-keys grant
    cluster.run_for(5)
    cluster.put(0, "private_keys", "fpr-alice", {"secret_key": b"alice"})
    cluster.run_for(10)
    assert "fpr-alice" in cluster.records(1, "private_keys")
    assert cluster.records(2, "private_keys") == {}
    assert not any(r.dataset == "private_keys" for r in records_sent_to(cluster, 2))
    with pytest.raises(LocalProtocolError, match="may not hold private keys"):
        cluster.put(2, "private_keys", "fpr-mallory", {"secret_key": b"m"})

    grant(cluster, 2, private_keys=True)
    cluster.run_for(10)
    assert "fpr-alice" in cluster.records(2, "private_keys")


def test_administrative_records_need_an_administrator_signature_locally():
    cluster = Cluster([PRIVATE] * 2, administrated=True)
    with pytest.raises(LocalProtocolError, match="signed by an administrator"):
        cluster.policy(0, "grant/" + node_ids(cluster)[1].hex(), {"admitted": True})
    mallory_id, mallory_sign = cluster.signing.new_identity(cluster.rng)
    forged = sign_record(mallory_sign, "cluster_policy", "wep", {"replication": False},
                         Version(int(cluster.now * 1000), 0, mallory_id))
    with pytest.raises(LocalProtocolError, match="not signed by a pinned administrator key"):
        cluster.nodes[0].write_signed(forged, cluster.now)
    assert cluster.records(0, "cluster_policy") == {}


def test_forged_policy_and_grants_from_a_member_are_refused_and_change_nothing():
    cluster = Cluster([PRIVATE, PRIVATE, NO_PRIVATE], administrated=True)
    grant(cluster, 0, private_keys=True)
    grant(cluster, 1, private_keys=True)
    grant(cluster, 2)
    cluster.run_for(5)
    cluster.put(0, "private_keys", "fpr-alice", {"secret_key": b"alice"})
    cluster.run_for(5)
    honest, attacker = cluster.nodes[0], cluster.nodes[2]
    attacker_id, attacker_sign = cluster.identities[2]
    admin_id = cluster.admin[0]
    now_ms = int(cluster.now * 1000) + 1
    grants_before = dict(honest.policy.grants)
    store_before = cluster.records(0, "cluster_policy")
    forged = [
        # Signed by the attacker's own key, posing as administrative.
        sign_record(attacker_sign, "cluster_policy", "grant/" + attacker_id.hex(),
                    {"admitted": True, "private_keys": True}, Version(now_ms, 0, attacker_id)),
        # Claiming the administrator as origin, signed by the attacker.
        sign_record(attacker_sign, "cluster_policy", "grant/" + node_ids(cluster)[0].hex(),
                    {"admitted": False}, Version(now_ms, 0, admin_id)),
        # No signature at all.
        Record("cluster_policy", "wep", encode_value({"replication": False}),
               Version(now_ms, 0, admin_id)),
        # The open cluster's denial format, which administrators no longer read.
        sign_record(attacker_sign, "cluster_policy", "private_keys/" + node_ids(cluster)[1].hex(),
                    {"allow": False}, Version(now_ms, 0, attacker_id)),
    ]
    honest.events()
    honest.receive(attacker_id, Push(1, tuple(forged)), cluster.now)
    refused = refusals(honest)
    assert len(refused) == len(forged)
    assert all(event.peer == attacker_id for event in refused)
    assert refused_from(honest, attacker_id, cluster.now) == len(forged)
    assert honest.policy.grants == grants_before
    assert cluster.records(0, "cluster_policy") == store_before
    cluster.run_for(10)
    assert "fpr-alice" in cluster.records(0, "private_keys")  # no honest copy purged
    assert "fpr-alice" in cluster.records(1, "private_keys")
    assert attacker.store.count("private_keys") == 0


def test_a_replayed_grant_cannot_undo_its_revocation():
    cluster = Cluster([PRIVATE] * 2, administrated=True)
    grant(cluster, 0, private_keys=True)
    granted = grant(cluster, 1, private_keys=True)
    cluster.run_for(2)
    grant(cluster, 1, private_keys=False)
    cluster.run_for(2)
    honest = cluster.nodes[0]
    target = node_ids(cluster)[1]
    assert not honest.policy.granted(target, "private_keys")
    restamped = Record(granted.dataset, granted.key, granted.value,
                       Version(int(cluster.now * 1000) + 5, 0, granted.version.origin),
                       granted.signature)
    honest.events()
    honest.receive(target, Push(7, (granted, restamped)), cluster.now)
    assert [e.peer for e in refusals(honest)] == [target]  # the restamped one; the old one loses
    assert not honest.policy.granted(target, "private_keys")


def test_a_private_key_from_an_origin_without_the_grant_is_refused_even_when_forwarded():
    cluster = Cluster([PRIVATE] * 3, administrated=True)
    grant(cluster, 0, private_keys=True)
    grant(cluster, 1, private_keys=True)
    grant(cluster, 2)
    cluster.run_for(5)
    cluster.put(0, "private_keys", "fpr-alice", {"secret_key": b"alice"})
    cluster.run_for(5)
    honest = cluster.nodes[0]
    ids = node_ids(cluster)
    relay_id, relay_sign = cluster.identities[1]
    outsider_sign = cluster.identities[2][1]
    now_ms = int(cluster.now * 1000) + 1
    alice_before = honest.store.get("private_keys", "fpr-alice")
    replacing = sign_record(outsider_sign, "private_keys", "fpr-alice", {"secret_key": b"evil"},
                            Version(now_ms, 0, ids[2]))
    unsigned = Record("private_keys", "fpr-bob", encode_value({"secret_key": b"bob"}),
                      Version(now_ms, 0, relay_id))
    bad_signature = Record("private_keys", "fpr-carol", encode_value({"secret_key": b"c"}),
                           Version(now_ms, 0, relay_id), b"\x00" * 64)
    fine = sign_record(relay_sign, "private_keys", "fpr-dave", {"secret_key": b"dave"},
                       Version(now_ms, 0, relay_id))
    honest.events()
    honest.receive(relay_id, Push(3, (replacing, unsigned, bad_signature, fine)), cluster.now)
    reasons = [event.reason for event in refusals(honest)]
    assert len(reasons) == 3
    assert "not granted private keys" in reasons[0]
    assert "does not verify" in reasons[1] and "does not verify" in reasons[2]
    assert honest.store.get("private_keys", "fpr-alice") == alice_before
    assert honest.store.get("private_keys", "fpr-dave") is not None


def test_wep_mailboxes_go_only_to_members_granted_wep():
    wep = {"private_keys": False, "wep": True}
    cluster = Cluster([wep] * 4, administrated=True)
    for index in range(4):
        grant(cluster, index, wep=index < 2)  # all admitted and tagged; only two granted
    admin_write(cluster, 0, "wep", {"replication": True, "replicas": 2})
    cluster.run_for(5)
    for m in range(8):
        cluster.put(m % 4, "web_messenger", f"box{m}", {"owner": m})
    cluster.run_for(20)
    for m in range(8):
        holders = {i for i in range(4) if f"box{m}" in cluster.records(i, "web_messenger")}
        assert holders == {0, 1}


def test_an_open_cluster_keeps_working_without_grants():
    cluster = Cluster([PRIVATE] * 2)
    cluster.put(0, "private_keys", "fpr", {"secret_key": b"k"})
    cluster.run_for(5)
    assert "fpr" in cluster.records(1, "private_keys")
    assert cluster.stores[1].get("private_keys", "fpr").signature is not None


def test_private_keys_from_before_administrators_are_resigned_to_replicate_again():
    cluster = Cluster([PRIVATE, PRIVATE, NO_PRIVATE], administrated=True)
    for index in range(3):
        grant(cluster, index, private_keys=index < 2)
    cluster.run_for(5)
    ids = node_ids(cluster)
    legacy = Record("private_keys", "fpr-old", encode_value({"secret_key": b"old"}),
                    Version(int(cluster.now * 1000), 0, ids[0]))  # no signature: an old write
    cluster.stores[0].apply([legacy])
    cluster.restart(0, incarnation=2)
    cluster.run_for(10)
    assert "fpr-old" not in cluster.records(1, "private_keys")  # refused: unsigned
    with pytest.raises(LocalProtocolError, match="may not hold private keys"):
        cluster.nodes[2].resign_private_keys(cluster.now)
    assert cluster.nodes[0].resign_private_keys(cluster.now) == 1
    assert cluster.nodes[0].resign_private_keys(cluster.now) == 0  # nothing left to do
    cluster._collect(0)
    cluster.run_for(10)
    held = cluster.stores[1].get("private_keys", "fpr-old")
    assert held is not None and held.value == legacy.value and held.version > legacy.version
    assert held.signature is not None


def test_rotation_records_signed_by_an_unpinned_key_no_longer_count():
    signing = FakeSigning()
    rng = random.Random(3)
    (old_id, old_sign), (new_id, new_sign) = (signing.new_identity(rng) for _ in range(2))
    member = b"\x09" * 32
    store = MemoryStore()
    store.apply([sign_record(old_sign, "cluster_policy", "grant/" + member.hex(),
                             {"admitted": True}, Version(1000, 0, old_id))])

    def grants(*pinned):
        return load_policy(store, Authority(pinned, signing.verify), decode_value).grants

    assert grants(old_id, new_id) == {member: frozenset({"admitted"})}
    assert grants(new_id) == {}  # the old key dropped before re-signing: no grant
    store.apply([sign_record(new_sign, "cluster_policy", "grant/" + member.hex(),
                             {"admitted": True, "wep": True}, Version(2000, 0, new_id))])
    assert grants(new_id) == {member: frozenset({"admitted", "wep"})}


def test_revoking_a_writer_keeps_its_keys_replicating_and_lets_it_hand_them_off():
    cluster = Cluster([PRIVATE] * 4, administrated=True)
    for index in range(3):
        grant(cluster, index, private_keys=True)
    cluster.run_for(5)
    ids = node_ids(cluster)
    cluster.put(2, "private_keys", "fpr-by-n2", {"secret_key": b"k2"})
    cluster.run_for(5)
    assert cluster.stores[0].get("private_keys", "fpr-by-n2").version.origin == ids[2]

    grant(cluster, 2, private_keys=False)  # n2 loses its private-keys grant
    cluster.run_for(15)
    assert cluster.records(2, "private_keys") == {}  # handed off and purged
    for index in (0, 1):
        held = cluster.stores[index].get("private_keys", "fpr-by-n2")
        assert held.value == encode_value({"secret_key": b"k2"})
        assert held.version.origin in (ids[0], ids[1])  # re-signed by a granted member

    grant(cluster, 3, private_keys=True)  # a newcomer accepts the re-signed key
    cluster.run_for(15)
    assert "fpr-by-n2" in cluster.records(3, "private_keys")

    revoked_id, revoked_sign = cluster.identities[2]
    late = sign_record(revoked_sign, "private_keys", "fpr-by-n2", {"secret_key": b"evil"},
                       Version(int(cluster.now * 1000) + 1, 0, revoked_id))
    cluster.nodes[0].events()
    cluster.nodes[0].receive(revoked_id, Push(9, (late,)), cluster.now)
    assert [e.peer for e in refusals(cluster.nodes[0])] == [revoked_id]


def test_a_revoked_members_own_unreplicated_keys_leave_it_when_refused():
    cluster = Cluster([PRIVATE] * 3, administrated=True)
    for index in range(3):
        grant(cluster, index, private_keys=True)
    cluster.run_for(5)
    cluster.partition([2], [0, 1])
    cluster.put(2, "private_keys", "fpr-stranded", {"secret_key": b"s"})
    grant(cluster, 2, private_keys=False)  # revoked before its write reached anyone
    cluster.run_for(2)
    cluster.heal()
    cluster.run_for(30)
    assert cluster.records(2, "private_keys") == {}  # not kept forever on the revoked member
    assert all("fpr-stranded" not in cluster.records(i, "private_keys") for i in (0, 1))
    assert cluster.nodes[2].statistics()["private_keys_undeliverable"] == 1


def test_a_member_named_like_an_owner_gets_no_mailbox():
    owner, impostor = b"\x01" * 32, b"\x02" * 32
    policy = ClusterPolicy(enforced=True, wep_replicas=2,
                           grants={owner: frozenset({"admitted", "wep"})})
    members = [Candidate(owner, "pgp-a", {"wep": "true"}),
               Candidate(impostor, "pgp-a", {"wep": "true"})]  # same name, no grant
    assert [c.node_id for c in wep_candidates(members, policy)] == [owner]
    for mailbox in ("box1", "box2", "box3"):
        assert mailbox_owners(mailbox, wep_candidates(members, policy), policy) == (owner,)


def test_a_grant_counts_only_under_the_key_the_grant_verb_writes():
    # `gossipnode grant` writes "grant/" + 64 lowercase hex digits. Other spellings that
    # Python's bytes.fromhex reads as the same id (capitals, spaces) or as a shorter one are
    # signed by the administrator here too, later and granting more: none of them counts,
    # whatever order the records are read in. (Control characters in a key are refused.)
    cluster = Cluster([PRIVATE] * 3, administrated=True)
    grant(cluster, 0, private_keys=True)
    grant(cluster, 1, private_keys=True)
    grant(cluster, 2)  # admitted, no private keys
    target = node_ids(cluster)[2]
    everything = {"admitted": True, "private_keys": True, "wep": True}
    for spelling in (target.hex().upper(), target.hex() + " ",
                     target.hex()[:2] + " " + target.hex()[2:], target.hex()[:-2]):
        cluster.run_for(1)
        admin_write(cluster, 0, "grant/" + spelling, everything)
    cluster.run_for(5)
    cluster.put(0, "private_keys", "fpr-alice", {"secret_key": b"alice"})
    cluster.run_for(10)
    for index in range(3):
        policy = cluster.nodes[index].policy
        assert policy.granted(target, "admitted")
        assert not policy.granted(target, "private_keys")
        assert not policy.granted(target, "wep")
    assert "fpr-alice" in cluster.records(1, "private_keys")
    assert cluster.records(2, "private_keys") == {}
