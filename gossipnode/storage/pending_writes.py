"""PendingWritesStore: a SqliteStore whose batches are written by another writer (the
agent's writer thread, runtime/writer_thread.py, or its writer process,
runtime/writer_process.py), while its own connection reads.

Rules:
1. `apply_changes` resolves a batch against what is stored (and pending) exactly as
   SqliteStore does, then hands the winners to the writer as one numbered batch (`commits`
   counts it at once) and keeps them pending; it returns without waiting. The writer
   answers with the number of the last batch it committed and synced; `confirmed(n)` then
   sets `durable` to n and forgets the pending records of every batch up to n, which the
   read connection sees in the database from then on (WAL: a read sees every commit made
   before it started, by any process).
2. Every read sees the pending records above the database's: `get`, `get_many`, `scan`,
   `replicated`; `count` is moved at hand-over, as SqliteStore moves it at commit. So the
   core reads its own writes at once, as before.
3. The rarer writes (`remove`, `collect_tombstones`, `clear_replicated`, `set_meta`) run on
   this connection, after the writer has answered every batch (`drain`): they are then
   ordered after every batch, and never wait for the writer's lock. Their commits are
   made durable by an empty batch, which the writer answers with a sync of the log.
4. `close` drains the writer, ends it, then closes the store.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

from ..core.records import Record
from ..core.store import Resolve, check_replicated
from .sqlite_store import SqliteStore

__all__ = ["BatchWriter", "PendingWritesStore", "Row"]

# A record as the writer stores it: dataset, key, wall_ms, counter, origin, value, signature.
Row = tuple[str, str, int, int, bytes, bytes | None, bytes | None]


class BatchWriter(Protocol):
    def submit(self, number: int, rows: tuple[Row, ...]) -> None:
        """Hand batch `number` over (no rows: sync only); answers go to `confirmed`."""

    def drain(self) -> None:
        """Return once every batch submitted is answered (raises if the writer failed)."""

    async def wait_answers(self) -> None:
        """In the event loop: return once some answer came, handed to `confirmed` (raises
        if the writer failed)."""

    def close(self) -> None:
        """Drain, then end the writer."""


class PendingWritesStore(SqliteStore):
    def __init__(self, path: str | Path,
                 writer: Callable[[Path, Callable[[int], None]], BatchWriter]) -> None:
        """`writer(path, confirmed)` starts the writer of the database at `path`, which
        calls `confirmed(n)` with each answer. The connection of this store only reads
        (rule 3 aside), so it defers its syncs to the writer's."""
        super().__init__(path, deferred_sync=True)
        # dataset -> key -> (batch number, record): handed over, not yet answered.
        self._pending: dict[str, dict[str, tuple[int, Record]]] = {}
        self._batches: deque[tuple[int, tuple[tuple[str, str], ...]]] = deque()
        try:
            self.writer = writer(self.path, self.confirmed)
        except BaseException:
            super().close()
            raise

    # --- the hand-over (rule 1) ------------------------------------------------------------

    def apply_changes(self, records: Iterable[Record], resolve: Resolve | None = None
                      ) -> list[tuple[Record | None, Record]]:
        """As SqliteStore.apply_changes (the same resolution, in order), but the batch is
        handed to the writer instead of committed here."""
        changes = self.resolved(records, resolve)  # through our get_many: pending first
        if not changes:
            return changes
        number = self.commits + 1
        self.writer.submit(number, tuple(
            (r.dataset, r.key, r.version.wall_ms, r.version.counter, r.version.origin,
             r.value, r.signature) for _, r in changes))
        self.commits = number
        for previous, record in changes:
            self._pending.setdefault(record.dataset, {})[record.key] = (number, record)
            if previous is not None:
                self._counts[(previous.dataset, previous.value is None)] -= 1
            self._counts[(record.dataset, record.value is None)] += 1
        self._batches.append((number, tuple((r.dataset, r.key) for _, r in changes)))
        return changes

    def confirmed(self, number: int) -> None:
        """The writer committed and synced every batch up to `number`."""
        self.durable = max(self.durable, number)
        while self._batches and self._batches[0][0] <= number:
            batch, keys = self._batches.popleft()
            for dataset, key in keys:
                held = self._pending.get(dataset)
                if held is not None and key in held and held[key][0] == batch:
                    del held[key]  # (a later batch's record of the key stays pending)
                    if not held:
                        del self._pending[dataset]

    @property
    def pending_records(self) -> int:
        return sum(len(held) for held in self._pending.values())

    # --- reads (rule 2) --------------------------------------------------------------------

    def get(self, dataset: str, key: str) -> Record | None:
        held = self._pending.get(dataset)
        if held is not None and key in held:
            return held[key][1]
        return super().get(dataset, key)

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Record]:
        keys = list(keys)
        found = super().get_many(keys)
        if self._pending:
            for dataset, key in keys:
                held = self._pending.get(dataset)
                if held is not None and key in held:
                    found[(dataset, key)] = held[key][1]
        return found

    def scan(self, dataset: str, *, prefix: str = "", after: str | None = None,
             limit: int | None = None, tombstones: bool = False) -> list[Record]:
        held = self._pending.get(dataset)
        if not held:
            return super().scan(dataset, prefix=prefix, after=after, limit=limit,
                                tombstones=tombstones)
        mine = [record for key, (_, record) in held.items()
                if key.startswith(prefix) and (after is None or key > after)]
        # A pending record can hide one stored row at most: with that many more, the first
        # `limit` of the merged rows are among those read.
        stored = super().scan(dataset, prefix=prefix, after=after, tombstones=tombstones,
                              limit=None if limit is None else limit + len(mine))
        merged = {record.key: record for record in stored}
        merged.update((record.key, record) for record in mine)
        found = [merged[key] for key in sorted(merged)
                 if tombstones or merged[key].value is not None]
        return found if limit is None else found[:limit]

    def replicated(self, dataset: str) -> Iterator[Record]:
        check_replicated(dataset)
        held = self._pending.get(dataset)
        if not held:
            return super().replicated(dataset)
        mine = sorted((record for _, record in held.values()), key=lambda r: r.key)
        return _overlay(super().replicated(dataset), mine)

    # --- the rarer writes (rule 3) and the end (rule 4) ------------------------------------

    def remove(self, dataset: str, keys: Iterable[str]) -> int:
        return self._locally(lambda: super(PendingWritesStore, self).remove(dataset, keys))

    def collect_tombstones(self, before_wall_ms: int) -> list[Record]:
        return self._locally(
            lambda: super(PendingWritesStore, self).collect_tombstones(before_wall_ms))

    def clear_replicated(self) -> int:
        return self._locally(lambda: super(PendingWritesStore, self).clear_replicated())

    def set_meta(self, name: str, value: bytes) -> None:
        self._locally(lambda: super(PendingWritesStore, self).set_meta(name, value))

    def _locally(self, write: Callable[[], object]) -> object:
        self.writer.drain()
        before = self.commits
        try:
            return write()
        finally:
            if self.commits != before:  # committed here: the writer's sync covers it
                self.writer.submit(self.commits, ())

    def sync_wal(self) -> int:
        """Not this store's: the writer syncs (rule 1)."""
        raise NotImplementedError("a PendingWritesStore's writer syncs its commits")

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            super().close()


def _overlay(stored: Iterator[Record], pending: list[Record]) -> Iterator[Record]:
    """Both in key order; a pending record replaces the stored one of its key."""
    merged = heapq.merge(((r.key, 0, r) for r in pending), ((r.key, 1, r) for r in stored))
    last = None
    for key, _, record in merged:
        if key != last:
            yield record
        last = key
