"""When the store's commits are on disk: the write-ahead log, its disk sync and its
checkpoints.

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

Purged means gone: after an outright removal (`remove`, `clear_replicated`: a purge of
private keys a member may no longer hold) the log is checkpointed and truncated
(`_truncate_log`), so the removed bytes (zeroed in the database by `secure_delete`) are in
no file of the data directory, neither in free pages nor in the log.
"""

from __future__ import annotations

import os
import sqlite3

from .sqlite_database import BUSY_TIMEOUT_MS, StoreState, synchronous_mode

__all__ = ["WalSync"]


class WalSync(StoreState):
    """Mixed into `SqliteStore`: the state the log's steps use is the store's own."""

    # The WAL file, opened at the first sync; the checkpoints' own connection.
    _wal_fd: int | None
    _checkpointer: sqlite3.Connection | None

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
                f"PRAGMA synchronous={synchronous_mode(self.deferred_sync)}")
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

    def _truncate_log(self) -> None:
        """Copy the log into the database file and empty it: the pages that held removed
        records (zeroed there by secure_delete) leave the log, and the log file is cut
        to zero bytes."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
