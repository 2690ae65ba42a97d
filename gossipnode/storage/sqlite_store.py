"""SqliteStore: the agent's durable `RecordStore` (see core/store.py for the contract).

Durability: the database runs in WAL mode. By default with `synchronous=FULL`, so a
transaction is on disk when COMMIT returns; `apply` commits before it returns, hence a
write acknowledged after `apply` survives kill -9 and power loss (Invariant 4).

With `deferred_sync=True` (the agent's choice) COMMIT writes the WAL without waiting for
the disk (`synchronous=NORMAL`), and the disk sync is a separate step, `sync_wal()`, that
the agent runs in a worker thread: one fsync of the WAL file makes every transaction
committed before it durable (SQLite itself syncs the WAL before each checkpoint copies it
into the database, and the database before the WAL is reset). `commits` counts write
transactions, `durable` is the count the last `sync_wal` covered; the caller must not
acknowledge a write, or a peer's push, before `durable` reaches the commit that held it.
So many writes share one sync (group commit), and the event loop never waits for a disk.
The log is copied into the database file by `checkpoint()`, which the agent also runs in a
worker thread, through a connection of its own; SQLite's own checkpoint at commit (by the
committing thread, with a sync of each file) then only runs as a backstop, when the log
reaches `BACKSTOP_CHECKPOINT_PAGES` (under a write load that never pauses, a concurrent
checkpoint cannot catch up the log's last frames, so the log only restarts from there).

SQLite's own locking keeps a second writer (another process, or a torn write) from
corrupting the file; a writer that finds the database locked waits up to `busy_timeout_ms`.
(The counts below assume the agent is the only writer, which the data directory's lock
ensures.)

Purged means gone: `secure_delete` overwrites deleted content with zeros, and after an
outright removal (`remove`, `clear_replicated`: a purge of private keys a member may no
longer hold) the write-ahead log is checkpointed and truncated, so the removed bytes are in
no file of the data directory, neither in free pages nor in the log.

Counts (`count`) come from per-dataset tallies kept in memory: taken with one scan at open,
then moved by every committed write. `status` asks for them on every call, and a scan per
dataset per call would cost O(records), which an operator polling status feels.

Schema changes are numbered migrations, applied in order at open and recorded in
`PRAGMA user_version`.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..core.catalog import LOCAL_DATASETS
from ..core.catalog import dataset as lookup_dataset
from ..core.records import Record, Version
from ..core.store import Resolve, check_replicated, resolve_lww

__all__ = ["SqliteStore", "StoreError"]

# A writer waits this long for another writer's lock before it gives up with an error.
BUSY_TIMEOUT_MS = 10_000
# Rows fetched per round trip into SQLite while iterating a dataset.
SCAN_BATCH_ROWS = 4096
# Keys per lookup query of a batch (`apply_changes`): well under SQLite's default limit of
# bound parameters (999 before 3.32), with the dataset as one more.
LOOKUP_KEYS_MAX = 500
# With deferred_sync, the committing connection checkpoints by itself (SQLite's automatic
# checkpoint, at its default of 1000 pages) only past this many log pages (64 MiB of 4 KiB
# pages): `checkpoint()` in a worker thread normally keeps the log far smaller.
BACKSTOP_CHECKPOINT_PAGES = 16_384
# Rows of one multi-row INSERT statement of `apply_changes` at most: a push from a peer
# carries up to 64 records, a group commit of client writes about as many as there are
# clients, so most batches are one statement. 7 parameters a row, 448 in all, under
# SQLite's limit of bound parameters before 3.32 (999); and sqlite3 keeps one prepared
# statement per row count used (its cache holds 128), well under a MiB for all 64.
ROWS_PER_STATEMENT = 64

_COLUMNS = ("dataset", "key", "wall_ms", "counter", "origin", "value", "signature")
# INSERT OR REPLACE of n rows at _INSERT_SQL[n], in order (of two rows with one key the
# later wins): built once, and sqlite3 caches the prepared statements by their text.
_INSERT_SQL = [""] + [
    f"INSERT OR REPLACE INTO records ({', '.join(_COLUMNS)}) VALUES "
    + ",".join([f"({','.join('?' * len(_COLUMNS))})"] * n)
    for n in range(1, ROWS_PER_STATEMENT + 1)
]

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE records (
        dataset TEXT NOT NULL,
        key TEXT NOT NULL,
        wall_ms INTEGER NOT NULL,
        counter INTEGER NOT NULL,
        origin BLOB NOT NULL,
        value BLOB,
        PRIMARY KEY (dataset, key)
    ) WITHOUT ROWID;
    CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    """,
    # 2: signed records (administrative records, private keys) keep their signature.
    """
    ALTER TABLE records ADD COLUMN signature BLOB;
    """,
)


class StoreError(Exception):
    """The store file cannot be opened or used. `str()` names the file and the reason."""


class SqliteStore:
    def __init__(self, path: str | Path, *, deferred_sync: bool = False) -> None:
        self.path = Path(path)
        self.deferred_sync = deferred_sync
        # Write transactions committed, and how many of them are known durable (see the
        # module docstring); equal at all times unless `deferred_sync`.
        self.commits = 0
        self.durable = 0
        self._wal_fd: int | None = None
        self._checkpointer: sqlite3.Connection | None = None
        try:
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'NORMAL' if deferred_sync else 'FULL'}")
            if deferred_sync:
                self._db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")
            self._db.execute("PRAGMA secure_delete=ON")
            self._migrate()
            self._counts = self._tally()
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: cannot open the store: {error}") from None

    def _migrate(self) -> None:
        (current,) = self._db.execute("PRAGMA user_version").fetchone()
        if current > len(_MIGRATIONS):
            raise StoreError(
                f"{self.path}: written by a newer gossipnode (schema {current}, "
                f"this one knows {len(_MIGRATIONS)})"
            )
        for number in range(current, len(_MIGRATIONS)):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # --- reads -------------------------------------------------------------------------------

    def get(self, dataset: str, key: str) -> Record | None:
        row = self._db.execute(
            "SELECT key, wall_ms, counter, origin, value, signature FROM records"
            " WHERE dataset = ? AND key = ?",
            (dataset, key),
        ).fetchone()
        return None if row is None else _record(dataset, row)

    def scan(
        self,
        dataset: str,
        *,
        prefix: str = "",
        after: str | None = None,
        limit: int | None = None,
        tombstones: bool = False,
    ) -> list[Record]:
        lookup_dataset(dataset)
        sql = ("SELECT key, wall_ms, counter, origin, value, signature FROM records"
               " WHERE dataset = ?")
        params: list[object] = [dataset]
        if after is not None and after >= prefix:
            sql += " AND key > ?"
            params.append(after)
        else:
            sql += " AND key >= ?"
            params.append(prefix)
        if not tombstones:
            sql += " AND value IS NOT NULL"
        sql += " ORDER BY key"
        found = []
        for row in self._db.execute(sql, params):
            if not row[0].startswith(prefix):
                break
            found.append(_record(dataset, row))
            if limit is not None and len(found) >= limit:
                break
        return found

    def replicated(self, dataset: str) -> Iterator[Record]:
        check_replicated(dataset)
        cursor = self._db.execute(
            "SELECT key, wall_ms, counter, origin, value, signature FROM records"
            " WHERE dataset = ? ORDER BY key",
            (dataset,),
        )
        while rows := cursor.fetchmany(SCAN_BATCH_ROWS):
            for row in rows:
                yield _record(dataset, row)

    def count(self, dataset: str, *, tombstones: bool = False) -> int:
        live = self._counts[(dataset, False)]
        return live + self._counts[(dataset, True)] if tombstones else live

    def _tally(self) -> Counter[tuple[str, bool]]:
        """(dataset, is a tombstone) -> records, counted in the database."""
        rows = self._db.execute(
            "SELECT dataset, value IS NULL, count(*) FROM records GROUP BY 1, 2"
        ).fetchall()
        return Counter({(dataset, bool(tombstone)): n for dataset, tombstone, n in rows})

    def get_meta(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    # --- writes: each one transaction, committed (durable) before returning ------------------

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
            width = len(_COLUMNS)
            with self._transaction():
                self._db.executemany(_INSERT_SQL[1], [params[start:start + width] for start
                                                      in range(0, len(params), width)])
        for previous, record in changes:  # committed: move the tallies
            if previous is not None:
                self._counts[(previous.dataset, previous.value is None)] -= 1
            self._counts[(record.dataset, record.value is None)] += 1
        return changes

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Record]:
        """One query per dataset and `LOOKUP_KEYS_MAX` keys."""
        by_dataset: dict[str, set[str]] = {}
        for dataset, key in keys:
            by_dataset.setdefault(dataset, set()).add(key)
        found: dict[tuple[str, str], Record] = {}
        for dataset, wanted in by_dataset.items():
            ordered = sorted(wanted)
            for start in range(0, len(ordered), LOOKUP_KEYS_MAX):
                chunk = ordered[start:start + LOOKUP_KEYS_MAX]
                rows = self._db.execute(
                    "SELECT key, wall_ms, counter, origin, value, signature FROM records"
                    f" WHERE dataset = ? AND key IN ({','.join('?' * len(chunk))})",
                    (dataset, *chunk),
                )
                for row in rows:
                    found[(dataset, row[0])] = _record(dataset, row)
        return found

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
        return [_record(row[0], row[1:]) for row in rows]

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

    def sync_wal(self) -> int:
        """Make every transaction committed so far durable; return the `commits` count
        this covers (the caller records it in `durable`, on its own thread).

        Touches no SQLite object, only the WAL file, so it may run in a worker thread
        while the owning thread goes on reading and committing."""
        covered = self.commits
        if self.deferred_sync and covered:
            os.fsync(self._wal())
        return covered

    def checkpoint(self) -> None:
        """Copy the log's committed frames into the database file and sync it (SQLite's
        PASSIVE checkpoint: it never waits for, nor blocks, the writer).

        Uses a connection of its own, so it may run in a worker thread while the owning
        thread goes on reading and committing; one call at a time."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
            self._checkpointer.execute(
                f"PRAGMA synchronous={'NORMAL' if self.deferred_sync else 'FULL'}")
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _wal(self) -> int:
        if self._wal_fd is None:
            self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY)
            # Once: the WAL's directory entry, so a fresh WAL file is found after a crash.
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        return self._wal_fd

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        self._db.close()  # the last connection checkpoints with syncs and removes the WAL
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        self.durable = self.commits

    def _truncate_log(self) -> None:
        """Copy the log into the database file and empty it: the pages that held removed
        records (zeroed there by secure_delete) leave the log, and the log file is cut
        to zero bytes."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def _committed(self) -> None:
        """Count a write transaction that committed."""
        self.commits += 1
        if not self.deferred_sync:
            self.durable = self.commits


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        self._store._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        store = self._store
        store._db.execute("COMMIT" if kind is None else "ROLLBACK")
        if kind is None:
            store._committed()


def _record(dataset: str, row: tuple) -> Record:
    key, wall_ms, counter, origin, value, signature = row
    return Record(
        dataset,
        key,
        None if value is None else bytes(value),
        Version(wall_ms, counter, bytes(origin)),
        None if signature is None else bytes(signature),
    )
