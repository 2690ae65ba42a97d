"""The per-dataset merge hook of NodeCore (core/merging.py), on a simulated cluster.

A toy merge (the union of an "items" list) shows the core's part: two live versions meet
on push and anti-entropy, every member ends with the same (version, value) and equal
digests, tombstones keep last-writer-wins, a local write that adds nothing is a no-op,
and datasets without a merge stay last-writer-wins. The last test runs the real OpenPGP
certificate merge across a partition.
"""

from __future__ import annotations

import pysequoia

from gossipnode.core.replication import Push
from gossipnode.openpgp.merge import value_merges
from gossipnode.wire.cbor import decode_value, encode_value
from tests.core.node_harness import Cluster
from tests.openpgp_certs import Key, packet_set

NODES = [{"private_keys": True}] * 3


def union(older: bytes, newer: bytes) -> bytes:
    items = set(decode_value(older)["items"]) | set(decode_value(newer)["items"])
    return encode_value({"items": sorted(items)})


def settled(cluster: Cluster, dataset: str, seconds: float = 30.0) -> list[dict]:
    cluster.run_for(seconds)
    return [cluster.records(i, dataset) for i in range(len(cluster.nodes))]


def digests(cluster: Cluster, dataset: str) -> set[str | None]:
    return {node.digests.root_hex(dataset) for node in cluster.nodes}


def test_concurrent_writes_on_both_sides_of_a_partition_merge_everywhere():
    cluster = Cluster(NODES, merges={"consumers": union})
    cluster.run_for(5)
    cluster.partition([0], [1, 2])
    cluster.put(0, "consumers", "k", {"items": ["a"]})
    cluster.run_for(1)
    second = cluster.put(1, "consumers", "k", {"items": ["b"]})
    cluster.put(2, "consumers", "k", {"items": ["c"]})
    cluster.run_for(5)
    cluster.heal()
    records = settled(cluster, "consumers")
    assert records[0] == records[1] == records[2]
    version, value = records[0]["k"]
    assert decode_value(value) == {"items": ["a", "b", "c"]}
    assert version >= second.version  # the higher version is kept, never a new one
    assert len(digests(cluster, "consumers")) == 1


def test_equal_versions_with_different_values_still_converge():
    """After a merge, members can hold the same version with different values: the digest
    sees the difference and anti-entropy moves it."""
    cluster = Cluster(NODES, merges={"consumers": union})
    cluster.run_for(5)
    cluster.partition([0], [1, 2])
    cluster.put(1, "consumers", "k", {"items": ["new"]})
    cluster.run_for(1)
    cluster.put(0, "consumers", "k", {"items": ["old"]})
    cluster.run_for(2)
    cluster.heal()
    records = settled(cluster, "consumers")
    assert records[0] == records[1] == records[2]
    assert decode_value(records[0]["k"][1]) == {"items": ["new", "old"]}
    assert len(digests(cluster, "consumers")) == 1


def test_a_local_write_that_adds_nothing_is_a_no_op():
    cluster = Cluster(NODES, merges={"consumers": union})
    cluster.run_for(5)
    first = cluster.put(0, "consumers", "k", {"items": ["a", "b"]})
    cluster.run_for(5)
    pushes = sum(isinstance(m, Push) for _, _, m in cluster.sent)
    again = cluster.put(0, "consumers", "k", {"items": ["b"]})
    assert again == first  # the stored record, same version
    cluster.run_for(1)
    assert sum(isinstance(m, Push) for _, _, m in cluster.sent) == pushes
    grown = cluster.put(0, "consumers", "k", {"items": ["c"]})
    assert grown.version > first.version
    assert decode_value(grown.value) == {"items": ["a", "b", "c"]}


def test_deletes_stay_last_writer_wins_and_a_later_write_recreates():
    cluster = Cluster(NODES, merges={"consumers": union})
    cluster.run_for(5)
    cluster.partition([0], [1, 2])
    cluster.put(0, "consumers", "k", {"items": ["old"]})
    cluster.run_for(1)
    cluster.put(1, "consumers", "k", {"items": ["x"]})
    cluster.delete(1, "consumers", "k")
    cluster.heal()
    records = settled(cluster, "consumers")
    assert all(r["k"][1] is None for r in records)  # the newer delete wins
    cluster.put(2, "consumers", "k", {"items": ["again"]})
    records = settled(cluster, "consumers")
    assert all(decode_value(r["k"][1]) == {"items": ["again"]} for r in records)


def test_datasets_without_a_merge_stay_last_writer_wins():
    cluster = Cluster(NODES, merges={"consumers": union})
    cluster.run_for(5)
    cluster.partition([0], [1, 2])
    cluster.put(0, "groups", "g", {"items": ["a"]})
    cluster.run_for(1)
    cluster.put(1, "groups", "g", {"items": ["b"]})
    cluster.heal()
    records = settled(cluster, "groups")
    assert all(decode_value(r["g"][1]) == {"items": ["b"]} for r in records)


def test_a_revocation_and_a_new_user_id_from_either_side_of_a_partition():
    """The real certificate merge: B's side learns the revocation while A's side imports an
    old copy with a new user ID; after the heal every member holds both, identically."""
    cluster = Cluster(NODES, merges=value_merges())
    cluster.run_for(5)
    key = Key.generate("Dora <dora@example.org>")
    cluster.put(0, "consumers", key.fingerprint, {"type": "external", "cert": key.public()})
    cluster.run_for(5)
    cluster.partition([0], [1, 2])
    revoked = key.revoked()  # each call signs anew: keep one
    cluster.put(1, "consumers", key.fingerprint, {"type": "external", "cert": revoked})
    cluster.run_for(1)
    old_copy = key.with_user_id("Dora Old <dora@old.example>")
    cluster.put(0, "consumers", key.fingerprint, {"type": "external", "cert": old_copy})
    cluster.run_for(5)
    cluster.heal()
    records = settled(cluster, "consumers")
    assert records[0] == records[1] == records[2]
    cert = decode_value(records[0][key.fingerprint][1])["cert"]
    assert packet_set(revoked) | packet_set(old_copy) == packet_set(cert)
    assert pysequoia.Cert.from_bytes(cert).is_revoked
    assert len(digests(cluster, "consumers")) == 1
