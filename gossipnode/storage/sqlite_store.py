"""SqliteStore: the agent's durable `RecordStore` (see core/store.py for the contract).

The store is cut by what each part knows; `SqliteStore` opens the database and closes it,
and mixes in the rest:
- sqlite_database.py: the schema and its migrations, how the connection is opened (WAL,
  sync mode, locking, `secure_delete`), the row format, and the state the parts share;
- sqlite_reads.py (`StoreReads`): get, scan, replicated, get_many, and the counts kept in
  memory;
- sqlite_writes.py (`StoreWrites`): the write path, one transaction per write, a batch
  in one multi-row INSERT;
- sqlite_wal.py (`WalSync`): when commits are on disk (`deferred_sync`, `sync_wal`,
  `checkpoint`: the group commit, Invariant 4), and the log truncated after a purge.
The worker thread that runs `sync_wal` is the agent's (runtime/durability.py).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .sqlite_database import StoreError, open_database
from .sqlite_reads import StoreReads
from .sqlite_wal import WalSync
from .sqlite_writes import StoreWrites

__all__ = ["SqliteStore", "StoreError"]


class SqliteStore(StoreReads, StoreWrites, WalSync):
    def __init__(self, path: str | Path, *, deferred_sync: bool = False) -> None:
        self.path = Path(path)
        self.deferred_sync = deferred_sync
        self.commits = 0
        self.durable = 0
        self._wal_fd = None
        self._checkpointer = None
        try:
            self._db = open_database(self.path, deferred_sync)
            self._counts = self._tally()
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: cannot open the store: {error}") from None

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        self._db.close()  # the last connection checkpoints with syncs and removes the WAL
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        self.durable = self.commits
