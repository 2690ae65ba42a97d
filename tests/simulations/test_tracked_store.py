"""The tracked store keeps the MemoryStore contract and its digests track every change."""

import inspect

from gossipnode.core.records import Record, Version
from gossipnode.core.store import MemoryStore
from simulations.tracked_store import TrackedStore

# MemoryStore methods that do not change records; every other one must be overridden.
READ_ONLY = {"get", "get_many", "scan", "replicated", "count", "get_meta", "set_meta", "close"}
ORIGIN = bytes(32)


def _record(dataset, key, wall_ms, value=b"\xa0"):
    return Record(dataset, key, value, Version(wall_ms, 0, ORIGIN))


def test_every_changing_method_of_memory_store_is_tracked():
    public = {name for name, _ in inspect.getmembers(MemoryStore, inspect.isfunction)
              if not name.startswith("_")}
    for name in sorted(public - READ_ONLY):
        assert name in TrackedStore.__dict__, f"TrackedStore does not track {name}"


def _fresh_digests(store):
    """The digests recomputed from scratch, to compare with the incremental ones."""
    rebuilt = TrackedStore(0)
    for name in ("consumers", "groups", "private_keys", "web_messenger"):
        rebuilt.apply(store.replicated(name))
    return (rebuilt.digest_all, rebuilt.digest_private, rebuilt.mailbox_digests,
            rebuilt.count_private)


def test_digests_follow_applies_removals_collection_and_clearing():
    store = TrackedStore(0)
    store.apply([_record("consumers", "a", 1), _record("groups", "g", 1),
                 _record("private_keys", "k", 1), _record("web_messenger", "m/1", 1)])
    store.apply([_record("consumers", "a", 2), _record("consumers", "a", 0)])
    store.apply([_record("web_messenger", "m/2", 3, None), _record("groups", "g", 5, None)])
    assert (store.digest_all, store.digest_private, store.mailbox_digests,
            store.count_private) == _fresh_digests(store)
    assert store.mailbox_counts == {"m": 2}
    store.remove("private_keys", ["k", "missing"])
    store.collect_tombstones(before_wall_ms=4)
    assert store.count_private == 0
    assert store.mailbox_counts == {"m": 1}
    assert (store.digest_all, store.digest_private, store.mailbox_digests,
            store.count_private) == _fresh_digests(store)
    store.clear_replicated()
    assert (store.digest_all, store.digest_private, store.mailbox_digests) == (0, 0, {})


def test_equal_contents_give_equal_digests_in_any_order():
    records = [_record("consumers", f"k{i}", i) for i in range(20)]
    first, second = TrackedStore(0), TrackedStore(1)
    first.apply(records)
    second.apply(reversed(records))
    assert first.digest_all == second.digest_all
    second.apply([_record("consumers", "k3", 99)])
    assert first.digest_all != second.digest_all


def test_apply_keeps_the_memory_store_contract():
    tracked, plain = TrackedStore(0), MemoryStore()
    batches = [[_record("consumers", "a", 2)], [_record("consumers", "a", 1)],
               [_record("consumers", "a", 3), _record("consumers", "b", 1)]]
    for batch in batches:
        assert tracked.apply(batch) == plain.apply(batch)
    assert list(tracked.replicated("consumers")) == list(plain.replicated("consumers"))
