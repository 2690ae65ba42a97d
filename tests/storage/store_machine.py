"""The state machine both durable stores are checked by: every sequence of operations on
the store under test gives what MemoryStore, the reference, gives (tests/storage)."""

import tempfile
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.records import Record, Version
from gossipnode.core.store import MemoryStore

DATASETS = ["groups", "private_keys", "network", "web_messenger"]
KEYS = ["a", "a/1", "a/2", "b", "ü", "zz"]
ORIGINS = [bytes([i]) * 32 for i in range(2)]

records = st.builds(
    Record,
    dataset=st.sampled_from(DATASETS),
    key=st.sampled_from(KEYS),
    value=st.one_of(st.none(), st.binary(max_size=8)),
    version=st.builds(Version, st.integers(0, 20), st.integers(0, 2), st.sampled_from(ORIGINS)),
)


class StoresAgree(RuleBasedStateMachine):
    """MemoryStore and the store `make_store` opens (`self.store`) agree at every step."""

    def make_store(self, path: Path):
        raise NotImplementedError

    def __init__(self):
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        self.memory = MemoryStore()
        self.store = self.make_store(Path(self.directory.name) / "store.sqlite3")
        self.stores = [self.memory, self.store]

    def teardown(self):
        self.store.close()
        self.directory.cleanup()

    @rule(batch=st.lists(records, max_size=5))
    def apply(self, batch):
        winners = [store.apply(batch) for store in self.stores]
        assert winners[0] == winners[1]

    @rule(dataset=st.sampled_from(DATASETS), keys=st.lists(st.sampled_from(KEYS), max_size=3))
    def remove(self, dataset, keys):
        assert self.memory.remove(dataset, keys) == self.store.remove(dataset, keys)

    @rule(before=st.integers(0, 25))
    def collect(self, before):
        collected = [
            sorted(store.collect_tombstones(before), key=lambda r: (r.dataset, r.key))
            for store in self.stores
        ]
        assert collected[0] == collected[1]

    @rule()
    def clear(self):
        assert self.memory.clear_replicated() == self.store.clear_replicated()

    @rule(
        dataset=st.sampled_from(DATASETS),
        prefix=st.sampled_from(["", "a", "a/", "z"]),
        after=st.one_of(st.none(), st.sampled_from(KEYS)),
        limit=st.one_of(st.none(), st.integers(1, 3)),
        tombstones=st.booleans(),
    )
    def scans_agree(self, dataset, prefix, after, limit, tombstones):
        found = [
            store.scan(dataset, prefix=prefix, after=after, limit=limit, tombstones=tombstones)
            for store in self.stores
        ]
        assert found[0] == found[1]

    @rule(pairs=st.lists(st.tuples(st.sampled_from([*DATASETS, "no-such-dataset"]),
                                   st.sampled_from(KEYS)), max_size=6))
    def get_many_agrees(self, pairs):
        found = [store.get_many(pairs) for store in self.stores]
        assert found[0] == found[1]
        assert found[1] == {p: self.memory.get(*p) for p in pairs if self.memory.get(*p)}

    @rule(name=st.sampled_from(["generation", "last_sync"]), value=st.binary(max_size=4))
    def meta(self, name, value):
        for store in self.stores:
            store.set_meta(name, value)
        assert self.memory.get_meta(name) == self.store.get_meta(name) == value

    @invariant()
    def contents_agree(self):
        for dataset in DATASETS:
            for key in KEYS:
                assert self.memory.get(dataset, key) == self.store.get(dataset, key)
            for tombstones in (False, True):
                assert self.memory.count(dataset, tombstones=tombstones) == self.store.count(
                    dataset, tombstones=tombstones
                )

    @invariant()
    def replication_never_reads_local_data(self):
        for store in self.stores:
            with pytest.raises(LocalProtocolError, match="node-local"):
                list(store.replicated("network"))
        for dataset in ("groups", "private_keys"):
            assert list(self.memory.replicated(dataset)) == list(self.store.replicated(dataset))
