"""The store's write path: every write is one transaction, committed before it returns, and
moves the in-memory counts (sqlite_reads.py) only once committed.

A batch (`apply_changes`) is resolved against the stored records read at once, and its
winners are written with one multi-row INSERT: with `deferred_sync` (sqlite_wal.py) the
commit does not wait for the disk, so the writes the agent gathers share one disk sync
(group commit), and what costs is SQLite's per-call work from Python, paid per statement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ..core.catalog import LOCAL_DATASETS
from ..core.catalog import dataset as lookup_dataset
from ..core.records import Record
from ..core.store import Resolve, resolve_lww
from .sqlite_database import COLUMNS, StoreState, record_from_row

__all__ = ["ROWS_PER_STATEMENT", "StoreWrites"]

# Rows of one multi-row INSERT statement of `apply_changes` at most: a push from a peer
# carries up to 64 records, a group commit of client writes about as many as there are
# clients, so most batches are one statement. 7 parameters a row, 448 in all, under
# SQLite's limit of bound parameters before 3.32 (999); and sqlite3 keeps one prepared
# statement per row count used (its cache holds 128), well under a MiB for all 64.
ROWS_PER_STATEMENT = 64

# INSERT OR REPLACE of n rows at _INSERT_SQL[n], in order (of two rows with one key the
# later wins): built once, and sqlite3 caches the prepared statements by their text.
_INSERT_SQL = [""] + [
    f"INSERT OR REPLACE INTO records ({', '.join(COLUMNS)}) VALUES "
    + ",".join([f"({','.join('?' * len(COLUMNS))})"] * n)
    for n in range(1, ROWS_PER_STATEMENT + 1)
]


class StoreWrites(StoreState):
    """Mixed into `SqliteStore`: the state the writes use is the store's own."""

    def apply(self, records: Iterable[Record]) -> list[Record]:
        return [winner for _, winner in self.apply_changes(records)]

    def apply_changes(self, records: Iterable[Record], resolve: Resolve | None = None
                      ) -> list[tuple[Record | None, Record]]:
        """One transaction for the whole batch, none if nothing changes: the stored records
        are read with one query per `LOOKUP_KEYS_MAX` keys and the winners written with
        one multi-row INSERT if they are at most `ROWS_PER_STATEMENT`, rather than a query
        and an insert per record (the per-call cost of SQLite from Python dominates at 1
        KiB records); that statement is its own transaction, without BEGIN and COMMIT: the
        read before it needs no transaction around it, since this connection is the
        store's only writer (the data directory's lock). More winners are written with one
        `executemany` in one transaction. Records are resolved in order, each against what
        the ones before it left, so a key twice in a batch ends as if applied one by one."""
        changes = self.resolved(records, resolve)
        if not changes:
            return changes
        params: list[object] = []
        for _, r in changes:
            version = r.version
            params += (r.dataset, r.key, version.wall_ms, version.counter, version.origin,
                       r.value, r.signature)
        if len(changes) <= ROWS_PER_STATEMENT:
            self._db.execute(_INSERT_SQL[len(changes)], params)
            self._committed()
        else:  # row by row: a multi-row statement inside a transaction needs a statement
            # journal, a copy of every page it changes, which costs more than it saves
            width = len(COLUMNS)
            with self._transaction():
                self._db.executemany(_INSERT_SQL[1], [params[start:start + width] for start
                                                      in range(0, len(params), width)])
        for previous, record in changes:  # committed: move the tallies
            if previous is not None:
                self._counts[(previous.dataset, previous.value is None)] -= 1
            self._counts[(record.dataset, record.value is None)] += 1
        return changes

    def resolved(self, records: Iterable[Record], resolve: Resolve | None = None
                 ) -> list[tuple[Record | None, Record]]:
        """The changes a batch makes, (stored or None, record to store), writing nothing:
        each record resolved in order against what the ones before it left, the stored
        ones read at once (`get_many`)."""
        records = list(records)
        resolve = resolve_lww if resolve is None else resolve
        changes: list[tuple[Record | None, Record]] = []
        for record in records:
            lookup_dataset(record.dataset)
        current = self.get_many((r.dataset, r.key) for r in records)
        for incoming in records:
            where = (incoming.dataset, incoming.key)
            previous = current.get(where)
            record = resolve(incoming, previous)
            if record is not None:
                current[where] = record
                changes.append((previous, record))
        return changes

    def remove(self, dataset: str, keys: Iterable[str]) -> int:
        removed: Counter[bool] = Counter()
        with self._transaction():
            for key in keys:
                # (RETURNING the value itself: SQLite 3.40 answers `value IS NULL` wrongly
                # here, 0 for a NULL value.)
                row = self._db.execute(
                    "DELETE FROM records WHERE dataset = ? AND key = ? RETURNING value",
                    (dataset, key),
                ).fetchone()
                if row is not None:
                    removed[row[0] is None] += 1
        for tombstone, n in removed.items():
            self._counts[(dataset, tombstone)] -= n
        if removed:
            self._truncate_log()
        return sum(removed.values())

    def collect_tombstones(self, before_wall_ms: int) -> list[Record]:
        with self._transaction():
            rows = self._db.execute(
                "SELECT dataset, key, wall_ms, counter, origin, value, signature FROM records"
                " WHERE value IS NULL AND wall_ms < ?",
                (before_wall_ms,),
            ).fetchall()
            self._db.execute(
                "DELETE FROM records WHERE value IS NULL AND wall_ms < ?", (before_wall_ms,)
            )
        for row in rows:
            self._counts[(row[0], True)] -= 1
        return [record_from_row(row[0], row[1:]) for row in rows]

    def clear_replicated(self) -> int:
        marks = ",".join("?" * len(LOCAL_DATASETS))
        with self._transaction():
            cursor = self._db.execute(
                f"DELETE FROM records WHERE dataset NOT IN ({marks})",
                LOCAL_DATASETS,
            )
        self._counts = self._tally()
        self._truncate_log()
        return cursor.rowcount

    def set_meta(self, name: str, value: bytes) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, bytes(value))
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def _committed(self) -> None:
        """Count a write transaction that committed."""
        self.commits += 1
        if not self.deferred_sync:
            self.durable = self.commits


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, store: StoreWrites) -> None:
        self._store = store

    def __enter__(self) -> None:
        self._store._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        store = self._store
        store._db.execute("COMMIT" if kind is None else "ROLLBACK")
        if kind is None:
            store._committed()
