"""The store's database: its schema and numbered migrations, how its connection is opened
(write-ahead log, sync mode, locking, secure deletion), the row format of a record, and the
state every part of `SqliteStore` (sqlite_store.py) shares.

SQLite's own locking keeps a second writer (another process, or a torn write) from
corrupting the file; a writer that finds the database locked waits up to `BUSY_TIMEOUT_MS`.
(The store's counts assume the agent is the only writer, which the data directory's lock
ensures.)

Purged means gone: `secure_delete` overwrites deleted content with zeros (and after an
outright removal the log is truncated, sqlite_wal.py), so removed bytes stay in no free page.

Schema changes are numbered migrations, applied in order at open and recorded in
`PRAGMA user_version`.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from ..core.records import Record, Version

__all__ = [
    "BACKSTOP_CHECKPOINT_PAGES",
    "BUSY_TIMEOUT_MS",
    "COLUMNS",
    "MIGRATIONS",
    "StoreError",
    "StoreState",
    "open_database",
    "record_from_row",
    "synchronous_mode",
]

# A writer waits this long for another writer's lock before it gives up with an error.
BUSY_TIMEOUT_MS = 10_000
# With deferred_sync, the committing connection checkpoints by itself (SQLite's automatic
# checkpoint, at its default of 1000 pages) only past this many log pages (64 MiB of 4 KiB
# pages): `checkpoint()` in a worker thread normally keeps the log far smaller.
BACKSTOP_CHECKPOINT_PAGES = 16_384

# The columns of a stored record, in the order a write binds them.
COLUMNS = ("dataset", "key", "wall_ms", "counter", "origin", "value", "signature")

MIGRATIONS: tuple[str, ...] = (
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
    # 3: records in a rowid table, (dataset, key) its unique index. A WITHOUT ROWID table
    # keeps every row in its primary key's b-tree, whose cells hold at most about a
    # quarter of a page (1,002 bytes of a 4 KiB page) before spilling to an overflow page
    # of their own: a 1 KiB record took a leaf cell and a whole overflow page (4.6 KiB a
    # record on disk), and every write dirtied both. In a rowid table a row holds up to
    # a page in its cell, the index keeps only (dataset, key, rowid), and new rows go at
    # the table's end: for 1 KiB records about a third of the disk and of the CPU per
    # write (scripts/bench_store.py --batch 10 --sync-every 1000: 51 us a record before,
    # 16 after) and a third of the CPU per lookup. Existing rows are copied over once, at
    # the first start of this build, and the file compacted after (`_migrate`): about 6 s
    # for 100,000 records of 1 KiB.
    """
    CREATE TABLE records_v3 (
        dataset TEXT NOT NULL,
        key TEXT NOT NULL,
        wall_ms INTEGER NOT NULL,
        counter INTEGER NOT NULL,
        origin BLOB NOT NULL,
        value BLOB,
        signature BLOB,
        PRIMARY KEY (dataset, key)
    );
    INSERT INTO records_v3 (dataset, key, wall_ms, counter, origin, value, signature)
        SELECT dataset, key, wall_ms, counter, origin, value, signature FROM records
        ORDER BY dataset, key;
    DROP TABLE records;
    ALTER TABLE records_v3 RENAME TO records;
    """,
)
# The schema whose migration copies every record into a new table (the file is compacted
# after it).
RECORDS_COPIED_AT = 3


class StoreError(Exception):
    """The store file cannot be opened or used. `str()` names the file and the reason."""


class StoreState:
    """What the reads, the writes and the log's durability (sqlite_reads.py,
    sqlite_writes.py, sqlite_wal.py) share of `SqliteStore` (sqlite_store.py), which sets
    it: declared once, for all three."""

    path: Path
    deferred_sync: bool
    # Write transactions committed, and how many of them are known durable (sqlite_wal.py);
    # equal at all times unless `deferred_sync`.
    commits: int
    durable: int
    _db: sqlite3.Connection
    # (dataset, is a tombstone) -> records (sqlite_reads.py says why in memory).
    _counts: Counter[tuple[str, bool]]
    # The reads' (sqlite_reads.py) that the writes use, and the log's (sqlite_wal.py).
    get_many: Callable[[Iterable[tuple[str, str]]], dict[tuple[str, str], Record]]
    _tally: Callable[[], Counter[tuple[str, bool]]]
    _truncate_log: Callable[[], None]


def synchronous_mode(deferred_sync: bool) -> str:
    """`PRAGMA synchronous` of every connection: NORMAL leaves the disk sync to `sync_wal`."""
    return "NORMAL" if deferred_sync else "FULL"


def open_database(path: Path, deferred_sync: bool) -> sqlite3.Connection:
    """The store's connection, in autocommit mode (the store begins its own transactions),
    with the schema migrated to this build's.

    Raises:
        sqlite3.Error: the file cannot be opened or migrated.
        StoreError: a newer gossipnode wrote it.
    """
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous_mode(deferred_sync)}")
    if deferred_sync:
        db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")
    db.execute("PRAGMA secure_delete=ON")
    _migrate(db, path)
    return db


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    (current,) = db.execute("PRAGMA user_version").fetchone()
    if current > len(MIGRATIONS):
        raise StoreError(
            f"{path}: written by a newer gossipnode (schema {current}, "
            f"this one knows {len(MIGRATIONS)})"
        )
    for number in range(current, len(MIGRATIONS)):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={number + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    if 0 < current < RECORDS_COPIED_AT:
        # The records were copied into a new table (migration 3): the old table's pages,
        # three quarters of the file, are free (and zeroed: secure_delete). Give them back
        # to the file system once, and the log that the copy and the rewrite filled.
        _compact(db)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _compact(db: sqlite3.Connection) -> bool:
    """Rewrite the database without its free pages; False if that failed (the disk too
    full for the rewrite), which changes nothing: the store is whole, and later writes
    reuse the free pages."""
    try:
        db.execute("VACUUM")
    except sqlite3.Error:
        return False
    return True


def record_from_row(dataset: str, row: tuple) -> Record:
    """The record of a row (key, wall_ms, counter, origin, value, signature)."""
    key, wall_ms, counter, origin, value, signature = row
    return Record(
        dataset,
        key,
        None if value is None else bytes(value),
        Version(wall_ms, counter, bytes(origin)),
        None if signature is None else bytes(signature),
    )
