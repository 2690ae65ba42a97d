"""MemoryStore (the reference) and SqliteStore agree on every sequence of operations."""

from hypothesis import settings

from gossipnode.core.records import Record, Version
from gossipnode.core.store import MemoryStore
from gossipnode.storage import SqliteStore
from tests.storage.store_machine import ORIGINS, StoresAgree


class SqliteStoreAgrees(StoresAgree):
    def make_store(self, path):
        return SqliteStore(path)


def test_a_batch_larger_than_one_lookup_applies_as_one_by_one(tmp_path):
    """Batches are read in chunks of keys; one of over a thousand keys, each written twice
    and some already stored, ends as the reference store applying them one by one."""
    sqlite = SqliteStore(tmp_path / "store.sqlite3")
    memory = MemoryStore()
    origin = ORIGINS[0]
    stored = [Record("groups", f"k{i:04d}", b"old", Version(5, 0, origin))
              for i in range(0, 1300, 3)]
    batch = [Record("groups", f"k{i:04d}", bytes([i % 7]), Version(4 + i % 3, 0, origin))
             for i in range(1300)] * 2
    batch += [Record("groups", "k0001", None, Version(9, 0, origin))]
    for store in (memory, sqlite):
        store.apply(stored)
    one_by_one = [winner for record in batch for winner in memory.apply([record])]
    assert sqlite.apply(batch) == one_by_one
    assert sqlite.scan("groups", tombstones=True) == memory.scan("groups", tombstones=True)
    assert sqlite.count("groups") == memory.count("groups")
    sqlite.close()


TestStoresAgree = SqliteStoreAgrees.TestCase
TestStoresAgree.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
