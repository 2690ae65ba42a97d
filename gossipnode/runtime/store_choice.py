"""The store the configuration asks for (`storage.writer`): who runs its transactions.

Rules:
1. `open_store` opens, for the writer in use (`StorageConfig.writer_in_use`: "auto" is
   the thread under durability "fsync", the loop under "periodic"), a `SqliteStore` that
   commits on the event loop ("loop"), or a `PendingWritesStore`
   (storage/pending_writes.py) whose batches a `WriterThread` (runtime/writer_thread.py,
   "thread") or a `WriterProcess` (runtime/writer_process.py, "process") writes. The agent
   calls it on its main thread (runtime/daemon.py), as a writer process needs
   (writer_process.py rule 1).
"""

from __future__ import annotations

from ..config import NodeConfig
from ..storage import SqliteStore
from ..storage.pending_writes import PendingWritesStore
from .writer_process import WriterProcess
from .writer_thread import WriterThread

__all__ = ["open_store"]


def open_store(config: NodeConfig) -> SqliteStore:
    """Rule 1. Raises StoreError (or OSError) as SqliteStore does."""
    writer = config.storage.writer_in_use
    if writer == "process":
        return PendingWritesStore(config.store_file, WriterProcess)
    if writer == "thread":
        return PendingWritesStore(config.store_file, WriterThread)
    return SqliteStore(config.store_file, deferred_sync=True)
