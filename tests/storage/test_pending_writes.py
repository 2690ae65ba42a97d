"""PendingWritesStore (its batches written by another writer, its reads seeing them at once)
agrees with MemoryStore, the reference, on every sequence of operations, whenever the
writer answers; and `durable` never covers a batch the writer has not answered."""

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.records import Record, Version
from gossipnode.core.store import MemoryStore
from gossipnode.storage.pending_writes import PendingWritesStore

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


class HeldWriter:
    """A writer that holds every batch until the test answers it, then writes it with a
    connection of its own (plain SQL, as the writer process does), in order."""

    def __init__(self, path: Path, confirmed) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.confirmed = confirmed
        self.held: list[tuple[int, tuple]] = []
        self.answered = 0

    def submit(self, number, rows):
        assert number > (self.held[-1][0] if self.held else self.answered)  # in order
        self.held.append((number, rows))

    def answer(self, batches: int) -> None:
        taken, self.held = self.held[:batches], self.held[batches:]
        if not taken:
            return
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany(
            "INSERT OR REPLACE INTO records (dataset, key, wall_ms, counter, origin, value,"
            " signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [row for _, rows in taken for row in rows])
        self.db.execute("COMMIT")
        self.answered = taken[-1][0]
        self.confirmed(self.answered)

    def drain(self):
        self.answer(len(self.held))

    def close(self):
        self.drain()
        self.db.close()


class PendingStoreAgrees(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        self.memory = MemoryStore()
        self.pending = PendingWritesStore(Path(self.directory.name) / "store.sqlite3",
                                          HeldWriter)
        self.writer = self.pending.writer
        self.stores = [self.memory, self.pending]

    def teardown(self):
        self.pending.close()
        self.directory.cleanup()

    @rule(batch=st.lists(records, max_size=5))
    def apply(self, batch):
        winners = [store.apply(batch) for store in self.stores]
        assert winners[0] == winners[1]

    @rule(batches=st.integers(0, 3))
    def writer_answers(self, batches):
        self.writer.answer(batches)

    @rule(dataset=st.sampled_from(DATASETS), keys=st.lists(st.sampled_from(KEYS), max_size=3))
    def remove(self, dataset, keys):
        assert self.memory.remove(dataset, keys) == self.pending.remove(dataset, keys)
        assert not self.writer.held[:-1]  # drained first; only the sync of the removal

    @rule(before=st.integers(0, 25))
    def collect(self, before):
        collected = [
            sorted(store.collect_tombstones(before), key=lambda r: (r.dataset, r.key))
            for store in self.stores
        ]
        assert collected[0] == collected[1]

    @rule()
    def clear(self):
        assert self.memory.clear_replicated() == self.pending.clear_replicated()

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

    @rule(pairs=st.lists(st.tuples(st.sampled_from(DATASETS), st.sampled_from(KEYS)),
                         max_size=6))
    def get_many_agrees(self, pairs):
        assert self.pending.get_many(pairs) == self.memory.get_many(pairs)

    @rule(name=st.sampled_from(["generation", "last_sync"]), value=st.binary(max_size=4))
    def meta(self, name, value):
        for store in self.stores:
            store.set_meta(name, value)
        assert self.memory.get_meta(name) == self.pending.get_meta(name) == value

    @invariant()
    def contents_agree(self):
        for dataset in DATASETS:
            for key in KEYS:
                assert self.memory.get(dataset, key) == self.pending.get(dataset, key)
            for tombstones in (False, True):
                assert self.memory.count(dataset, tombstones=tombstones) == self.pending.count(
                    dataset, tombstones=tombstones)

    @invariant()
    def replicated_agrees(self):
        with pytest.raises(LocalProtocolError, match="node-local"):
            list(self.pending.replicated("network"))
        for dataset in ("groups", "private_keys"):
            assert list(self.memory.replicated(dataset)) == list(self.pending.replicated(dataset))

    @invariant()
    def durable_is_what_the_writer_answered(self):
        assert self.pending.durable == self.writer.answered <= self.pending.commits
        if not self.writer.held:
            assert self.pending.pending_records == 0


TestPendingStoreAgrees = PendingStoreAgrees.TestCase
TestPendingStoreAgrees.settings = settings(max_examples=60, stateful_step_count=25,
                                           deadline=None)


def test_a_scan_with_a_limit_sees_past_stored_rows_that_pending_tombstones_hide(tmp_path):
    store = PendingWritesStore(tmp_path / "store.sqlite3", HeldWriter)
    origin = ORIGINS[0]
    keys = [f"k{i}" for i in range(6)]
    store.apply([Record("groups", k, b"v", Version(1, 0, origin)) for k in keys])
    store.writer.drain()
    store.apply([Record("groups", k, None, Version(2, 0, origin)) for k in keys[:3]])
    assert [r.key for r in store.scan("groups", limit=2)] == keys[3:5]
    assert [r.key for r in store.scan("groups", limit=2, tombstones=True)] == keys[:2]
    assert store.count("groups") == 3 and store.count("groups", tombstones=True) == 6
    store.close()
