"""The store each simulated node runs on: a MemoryStore that keeps digests for the checkers.

A simulated node's store is its durable part: a crash drops the core object and keeps the
store, exactly as kill -9 keeps a SQLite file. The store is also where the checkers look
for ground truth about what each node holds, so it keeps, incrementally and in O(1) per
change, what they would otherwise recompute over every record at every poll:

- `digest_all`: an XOR of record hashes over every dataset of scope `all`;
- `digest_private`: the same over `private_keys`;
- `mailbox_digests` / `mailbox_counts`: per WEP mailbox, over its `web_messenger` records.

Two stores hold the same records exactly when their digests match (up to a 2**-64 chance
of a hash collision; Python's `hash` is salted per process, but digests are only ever
compared with each other, never printed or used to order anything).

Every change is also reported to an observer (the checkers), which uses it to catch a
resurrected delete or the last copy of a mailbox message vanishing at the step it happens.
Every method of MemoryStore that changes records is overridden here (a test holds this to
be true), since a change that bypassed the accounting would blind the checkers.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Protocol

from gossipnode.core.catalog import Scope
from gossipnode.core.catalog import dataset as lookup_dataset
from gossipnode.core.records import Record
from gossipnode.core.store import MemoryStore, Resolve, resolve_lww

from .oracle import mailbox_of

__all__ = ["PRIVATE_KEYS", "WEB_MESSENGER", "StoreObserver", "TrackedStore", "record_hash"]

PRIVATE_KEYS = "private_keys"
WEB_MESSENGER = "web_messenger"


class StoreObserver(Protocol):
    def record_stored(self, store: TrackedStore, old: Record | None, new: Record) -> None: ...

    def record_removed(self, store: TrackedStore, record: Record) -> None: ...


def record_hash(record: Record) -> int:
    version = record.version
    return hash((record.dataset, record.key, version.wall_ms, version.counter,
                 version.origin, record.value))


class TrackedStore(MemoryStore):
    def __init__(self, owner: int, observer: StoreObserver | None = None) -> None:
        super().__init__()
        self.owner = owner  # the index of the simulated node this store belongs to
        self.observer = observer
        self.digest_all = 0
        self.digest_private = 0
        self.count_private = 0
        self.mailbox_digests: dict[str, int] = {}
        self.mailbox_counts: dict[str, int] = {}
        # A failing disk (a fault): every record write raises before it changes anything,
        # as a SQLite transaction whose sync failed is rolled back.
        self.failing = False
        self.failed_writes = 0

    def _account(self, record: Record, sign: int) -> None:
        """Add (sign=1) or take away (sign=-1) one record from the digests."""
        scope = lookup_dataset(record.dataset).scope
        if scope is Scope.ALL:
            self.digest_all ^= record_hash(record)
        elif scope is Scope.PRIVATE_KEY_ELIGIBLE:
            self.digest_private ^= record_hash(record)
            self.count_private += sign
        elif scope is Scope.WEP_PLACEMENT:
            mailbox = mailbox_of(record.key)
            self.mailbox_digests[mailbox] = (
                self.mailbox_digests.get(mailbox, 0) ^ record_hash(record)
            )
            count = self.mailbox_counts.get(mailbox, 0) + sign
            if count:
                self.mailbox_counts[mailbox] = count
            else:
                del self.mailbox_counts[mailbox]
                del self.mailbox_digests[mailbox]

    def apply_changes(self, records: Iterable[Record], resolve: Resolve | None = None
                      ) -> list[tuple[Record | None, Record]]:
        """Merge last-writer-wins (or as `resolve` says); return (replaced record or None,
        winner) per change. Raises OSError (EIO) while the disk is failing, having changed
        nothing."""
        if self.failing:
            self.failed_writes += 1
            raise OSError(errno.EIO, "simulated disk failure: the sync failed")
        changes: list[tuple[Record | None, Record]] = []
        for incoming in records:
            lookup_dataset(incoming.dataset)
            table = self._datasets.setdefault(incoming.dataset, {})
            old = table.get(incoming.key)
            record = (resolve_lww if resolve is None else resolve)(incoming, old)
            if record is not None:
                table[record.key] = record
                changes.append((old, record))
                if old is not None:
                    self._account(old, -1)
                self._account(record, 1)
                if self.observer is not None:
                    self.observer.record_stored(self, old, record)
        return changes

    def apply(self, records: Iterable[Record]) -> list[Record]:
        return [new for _, new in self.apply_changes(records)]

    def _removed(self, record: Record) -> None:
        self._account(record, -1)
        if self.observer is not None:
            self.observer.record_removed(self, record)

    def remove(self, dataset: str, keys: Iterable[str]) -> int:
        table = self._datasets.get(dataset, {})
        removed = 0
        for key in keys:
            record = table.pop(key, None)
            if record is not None:
                removed += 1
                self._removed(record)
        return removed

    def collect_tombstones(self, before_wall_ms: int) -> list[Record]:
        collected = super().collect_tombstones(before_wall_ms)
        for record in collected:
            self._removed(record)
        return collected

    def clear_replicated(self) -> int:
        doomed = [
            record
            for name, table in self._datasets.items()
            if lookup_dataset(name).replicated
            for record in table.values()
        ]
        removed = super().clear_replicated()
        for record in doomed:
            self._removed(record)
        return removed
