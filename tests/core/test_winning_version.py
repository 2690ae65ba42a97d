"""Only the winning version of a key should travel (reconcile.py rule 8): a session applies
what a message brought before it builds its answer, and does not send a version of a key
that the peer's newer one replaced meanwhile. Datasets whose versions merge still send what
the store holds, so both sides end with the merge in that one session."""

from gossipnode.config import ReplicationConfig
from gossipnode.core.events import SyncCompleted
from gossipnode.core.replication import Push
from gossipnode.wire.cbor import decode_value, encode_value
from tests.core.node_harness import Cluster

ALL = {"wep": False, "private_keys": True}
SLOW = ReplicationConfig(anti_entropy_interval_s=120.0)
KEYS = 40


def updated_on_both_sides(dataset, merges=None):
    """Both members hold KEYS keys; then each updates all of them while pushes are lost,
    node 1 last (its versions win)."""
    cluster = Cluster([ALL, ALL], replication=SLOW, merges=merges)
    cluster.run_for(5)
    for i in range(KEYS):
        cluster.put(0, dataset, f"k{i}", {"items": ["base"]})
    cluster.run_for(1)
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    for side, items in ((0, ["left"]), (1, ["right"])):
        for i in range(KEYS):
            cluster.put(side, dataset, f"k{i}", {"items": items})
        cluster.run_for(1)
    return cluster


def one_session(cluster, dataset):
    """Node 0 (holding the losing versions) reconciles with node 1; (sent by 0, sent by 1)."""
    mark = len(cluster.reported)
    cluster.nodes[0].sync.repair(cluster.now, cluster.nodes[1].node_id, dataset)
    cluster._collect(0)
    cluster.run_for(1)
    ends = {i: e for i, e in cluster.reported[mark:] if isinstance(e, SyncCompleted)}
    assert all(e.failure is None for e in ends.values())
    return ends[0].sent, ends[1].sent


def test_the_losing_versions_mostly_stay_home():
    cluster = updated_on_both_sides("groups")
    sent_by_loser, sent_by_winner = one_session(cluster, "groups")
    assert sent_by_winner == KEYS
    # The winner's versions arrive in the same messages that ask for the loser's, which are
    # then not sent (only those asked for before the winner's arrived still travel).
    assert sent_by_loser <= KEYS // 4, sent_by_loser
    assert cluster.records(0, "groups") == cluster.records(1, "groups")
    assert {decode_value(v)["items"][0] for _, v in cluster.records(0, "groups").values()} == {
        "right"}


def union(older: bytes, newer: bytes) -> bytes:
    items = set(decode_value(older)["items"]) | set(decode_value(newer)["items"])
    return encode_value({"items": sorted(items)})


def test_a_merging_dataset_still_sends_the_merge_and_agrees_in_one_session():
    cluster = updated_on_both_sides("consumers", merges={"consumers": union})
    one_session(cluster, "consumers")
    assert cluster.records(0, "consumers") == cluster.records(1, "consumers")
    values = {tuple(decode_value(v)["items"]) for _, v in cluster.records(1, "consumers").values()}
    assert values == {("base", "left", "right")}


def test_a_session_reads_the_records_it_sends_from_the_store_in_batches():
    cluster = Cluster([ALL, ALL], replication=SLOW)
    cluster.run_for(5)
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    for i in range(200):
        cluster.put(0, "groups", f"g{i:03d}", {"n": i})
    cluster.run_for(1)
    store = cluster.stores[0]
    reads = {"get": 0, "get_many": 0}
    inside = []  # MemoryStore.get_many reads key by key itself: those are not counted
    get, get_many = store.get, store.get_many

    def counted_get(*args):
        reads["get"] += not inside
        return get(*args)

    def counted_get_many(keys):
        reads["get_many"] += 1
        inside.append(True)
        try:
            return get_many(keys)
        finally:
            inside.pop()

    store.get, store.get_many = counted_get, counted_get_many
    cluster.nodes[1].sync.repair(cluster.now, cluster.nodes[0].node_id, "groups")
    cluster._collect(1)
    cluster.run_for(1)
    assert len(cluster.records(1, "groups")) == 200
    assert reads["get"] < 10 and reads["get_many"] <= 200 // 32 + 2, reads
