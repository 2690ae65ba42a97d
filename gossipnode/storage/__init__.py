"""Durable storage: SqliteStore, with the same contract as core.store.MemoryStore."""

from .sqlite_store import SqliteStore, StoreError

__all__ = ["SqliteStore", "StoreError"]
