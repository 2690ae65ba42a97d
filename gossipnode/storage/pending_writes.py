"""PendingWritesStore: a SqliteStore whose batches are written by another writer (the
agent's writer thread, runtime/writer_thread.py, or its writer process,
runtime/writer_process.py), while its own connection reads.

Rules:
1. `apply_changes` resolves a batch against what is stored (and pending) exactly as
   SqliteStore does, numbers it (`commits` counts it at once) and keeps its winners
   pending; it returns without waiting. `hand_over` gives every batch applied since the
   last hand-over to the writer as one batch, numbered as the last of them: the agent's
   syncer does so (runtime/durability.py `WriterSync`, spaced as the syncs of a store that
   commits itself, durability.py rule 4), so that the pushes a member takes within one
   sync's wait share one transaction and one sync; `apply_changes` hands over by itself
   once `UNSENT_ROWS_MAX` rows wait (the writer's own bound then holds the loop back, as
   a disk far behind would). The writer answers with the number of the last batch it
   committed and synced; `confirmed(n)` then sets `durable` to n and forgets the pending
   records of every batch up to n, which the read connection sees in the database from
   then on (WAL: a read sees every commit made before it started, by any process).
2. Every read sees the pending records above the database's: `get`, `get_many`, `scan`,
   `replicated`; `count` is moved when a batch is applied, as SqliteStore moves it at
   commit. So the core reads its own writes at once, as before.
3. The rarer writes (`remove`, `collect_tombstones`, `clear_replicated`, `set_meta`) run on
   this connection, after every batch is handed over and the writer has answered it
   (`drain`): they are then ordered after every batch, and never wait for the writer's
   lock. Their commits are made durable by an empty batch, which the writer answers with
   a sync of the log.
4. `close` hands over and drains, ends the writer, then closes the store.
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

__all__ = ["UNSENT_ROWS_MAX", "BatchWriter", "PendingWritesStore", "Row"]

# A record as the writer stores it: dataset, key, wall_ms, counter, origin, value, signature.
Row = tuple[str, str, int, int, bytes, bytes | None, bytes | None]
# Rows applied and not handed over at most: past this, `apply_changes` hands them over
# itself (rule 1). About 1 MiB of 1 KiB records, a quarter of what the writer thread
# queues before it holds the loop back (writer_thread.py `QUEUED_ROWS_MAX`).
UNSENT_ROWS_MAX = 1024


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
        # dataset -> key -> (batch number, record): applied, not yet answered.
        self._pending: dict[str, dict[str, tuple[int, Record]]] = {}
        self._batches: deque[tuple[int, tuple[tuple[str, str], ...]]] = deque()
        # Rows of the batches applied since the last hand-over, in order, and the number
        # of the last batch handed over (rule 1).
        self._unsent: list[Row] = []
        self.handed_over = 0
        try:
            self.writer = writer(self.path, self.confirmed)
        except BaseException:
            super().close()
            raise

    # --- the hand-over (rule 1) ------------------------------------------------------------

    def apply_changes(self, records: Iterable[Record], resolve: Resolve | None = None
                      ) -> list[tuple[Record | None, Record]]:
        """As SqliteStore.apply_changes (the same resolution, in order), but the batch is
        kept for the writer instead of committed here (rule 1)."""
        changes = self.resolved(records, resolve)  # through our get_many: pending first
        if not changes:
            return changes
        number = self.commits + 1
        self._unsent += [(r.dataset, r.key, r.version.wall_ms, r.version.counter,
                          r.version.origin, r.value, r.signature) for _, r in changes]
        self.commits = number
        for previous, record in changes:
            self._pending.setdefault(record.dataset, {})[record.key] = (number, record)
            if previous is not None:
                self._counts[(previous.dataset, previous.value is None)] -= 1
            self._counts[(record.dataset, record.value is None)] += 1
        self._batches.append((number, tuple((r.dataset, r.key) for _, r in changes)))
        if len(self._unsent) >= UNSENT_ROWS_MAX:
            self.hand_over()
        return changes

    def hand_over(self) -> None:
        """Give the writer every batch applied since the last hand-over, as one (rule 1)."""
        if self.handed_over < self.commits:
            rows, self._unsent = tuple(self._unsent), []
            self.writer.submit(self.commits, rows)
            self.handed_over = self.commits

    def drain(self) -> None:
        """Hand every batch over and return once the writer has answered them all."""
        self.hand_over()
        self.writer.drain()

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
        self.drain()  # nothing is left unsent: a commit made here is handed over empty
        try:
            return write()
        finally:
            self.hand_over()  # committed here: the writer's sync covers it

    def sync_wal(self) -> int:
        """Not this store's: the writer syncs (rule 1)."""
        raise NotImplementedError("a PendingWritesStore's writer syncs its commits")

    def close(self) -> None:
        try:
            try:
                self.hand_over()  # raises if the writer failed: nothing more is written
            finally:
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
