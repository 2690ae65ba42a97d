"""PendingWritesStore (its batches written by another writer, its reads seeing them at once)
agrees with MemoryStore, the reference, on every sequence of operations, whenever its
batches are handed over and whenever the writer answers; `durable` never covers a batch
the writer has not answered; a hand-over gives the writer every batch applied since the
last, as one."""

import sqlite3
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from gossipnode.core.records import Record, Version
from gossipnode.storage.pending_writes import PendingWritesStore
from tests.storage.store_machine import DATASETS, KEYS, ORIGINS, StoresAgree


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


class PendingStoreAgrees(StoresAgree):
    """The shared machine (store_machine.py), with the writer answering at random points."""

    def make_store(self, path):
        store = PendingWritesStore(path, HeldWriter)
        self.writer = store.writer
        return store

    @rule(batches=st.integers(0, 3))
    def writer_answers(self, batches):
        self.writer.answer(batches)

    @rule()
    def hand_over(self):
        held = len(self.writer.held)
        self.store.hand_over()
        assert len(self.writer.held) <= held + 1  # every unsent batch as one
        # The writer holds, or has answered, the last batch applied.
        assert self.store.commits in (self.writer.answered,
                                      self.writer.held[-1][0] if self.writer.held else 0)

    @rule(dataset=st.sampled_from(DATASETS), keys=st.lists(st.sampled_from(KEYS), max_size=3))
    def remove(self, dataset, keys):
        assert self.memory.remove(dataset, keys) == self.store.remove(dataset, keys)
        assert not self.writer.held[:-1]  # drained first; only the sync of the removal

    @invariant()
    def durable_is_what_the_writer_answered(self):
        assert self.store.durable == self.writer.answered <= self.store.commits
        if self.store.durable == self.store.commits:
            assert self.store.pending_records == 0


TestPendingStoreAgrees = PendingStoreAgrees.TestCase
TestPendingStoreAgrees.settings = settings(max_examples=60, stateful_step_count=25,
                                           deadline=None)


def test_a_scan_with_a_limit_sees_past_stored_rows_that_pending_tombstones_hide(tmp_path):
    store = PendingWritesStore(tmp_path / "store.sqlite3", HeldWriter)
    origin = ORIGINS[0]
    keys = [f"k{i}" for i in range(6)]
    store.apply([Record("groups", k, b"v", Version(1, 0, origin)) for k in keys])
    store.drain()
    store.apply([Record("groups", k, None, Version(2, 0, origin)) for k in keys[:3]])
    assert [r.key for r in store.scan("groups", limit=2)] == keys[3:5]
    assert [r.key for r in store.scan("groups", limit=2, tombstones=True)] == keys[:2]
    assert store.count("groups") == 3 and store.count("groups", tombstones=True) == 6
    store.close()


def test_batches_wait_for_the_hand_over_and_go_as_one_in_order(tmp_path):
    store = PendingWritesStore(tmp_path / "store.sqlite3", HeldWriter)
    origin = ORIGINS[0]
    store.apply([Record("groups", "a", b"1", Version(1, 0, origin))])
    store.apply([Record("groups", "b", b"2", Version(1, 0, origin)),
                 Record("groups", "a", b"3", Version(2, 0, origin))])
    assert store.writer.held == [] and store.commits == 2  # applied, not handed over
    assert store.get("groups", "a").value == b"3"
    store.hand_over()
    assert [(number, [row[:2] + row[5:6] for row in rows])
            for number, rows in store.writer.held] == [
        (2, [("groups", "a", b"1"), ("groups", "b", b"2"), ("groups", "a", b"3")])]
    store.hand_over()  # nothing new: nothing more
    assert len(store.writer.held) == 1
    store.writer.answer(1)
    assert (store.durable, store.pending_records) == (2, 0)
    assert store.get("groups", "a").value == b"3"  # the database's, in order
    store.close()


def test_a_long_unsent_run_is_handed_over_without_waiting_for_the_syncer(tmp_path):
    store = PendingWritesStore(tmp_path / "store.sqlite3", HeldWriter)
    origin = ORIGINS[0]
    for start in range(0, 1024, 64):
        assert store.writer.held == []
        store.apply([Record("groups", f"k{i:04d}", b"v", Version(1, 0, origin))
                     for i in range(start, start + 64)])
    assert [(number, len(rows)) for number, rows in store.writer.held] == [(16, 1024)]
    store.close()
