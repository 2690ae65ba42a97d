"""The record store interface and its in-memory reference implementation.

`RecordStore` is what the core and the shell need from storage. Two implementations keep the
same contract: `MemoryStore` here (the simulator and fast tests) and
`storage.sqlite_store.SqliteStore` (the agent). A model-based test holds them to agreement.

Contract:
1. `apply` merges each record last-writer-wins and returns the records that won, i.e. that
   changed the store. When it returns, those changes are durable (Invariant 4).
   `apply_changes(records, resolve=...)` lets the caller decide instead: `resolve(incoming,
   stored)` returns the record to store (it may be neither, e.g. a merge of both) or None
   to keep the stored one (core/merging.py).
2. Node-local datasets live in the same store, but `replicated()` refuses them: nothing built
   for replication can read them by mistake (Invariant 2).
3. `remove` deletes records outright, without tombstones. It serves only the cases where the
   record must vanish from this node but not from the cluster (a purge of private keys a
   member may no longer hold, a mailbox that moved) and tombstone collection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from .catalog import dataset as lookup_dataset
from .errors import LocalProtocolError
from .records import Record, wins

__all__ = ["MemoryStore", "RecordStore", "Resolve", "check_replicated", "resolve_lww"]

# resolve(incoming, stored) -> the record to store, or None to keep the stored one.
Resolve = Callable[[Record, Record | None], Record | None]


def resolve_lww(incoming: Record, stored: Record | None) -> Record | None:
    """Last-writer-wins as a resolve function: the default of `apply_changes`."""
    return incoming if wins(incoming, stored) else None


def check_replicated(name: str) -> None:
    """Raise LocalProtocolError unless `name` is a replicated dataset."""
    if not lookup_dataset(name).replicated:
        raise LocalProtocolError(f"dataset {name!r} is node-local and never replicated")


class RecordStore(Protocol):
    def get(self, dataset: str, key: str) -> Record | None:
        """The record (tombstones included), or None."""

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Record]:
        """The records (tombstones included) of those (dataset, key) pairs that exist, by
        pair: what `get` would return for each, read at once for a batch."""

    def apply(self, records: Iterable[Record]) -> list[Record]:
        """Merge last-writer-wins; return the winners; durable on return."""

    def apply_changes(self, records: Iterable[Record], resolve: Resolve | None = None
                      ) -> list[tuple[Record | None, Record]]:
        """As `apply`, returning (the record each winner replaced or None, the winner);
        `resolve` replaces last-writer-wins (rule 1)."""

    def scan(
        self,
        dataset: str,
        *,
        prefix: str = "",
        after: str | None = None,
        limit: int | None = None,
        tombstones: bool = False,
    ) -> list[Record]:
        """Records of any dataset (local ones too) in key order, for local readers."""

    def replicated(self, dataset: str) -> Iterator[Record]:
        """Every record of a replicated dataset, tombstones included, in key order.

        Raises LocalProtocolError for a node-local dataset."""

    def count(self, dataset: str, *, tombstones: bool = False) -> int: ...

    def remove(self, dataset: str, keys: Iterable[str]) -> int:
        """Delete records outright (no tombstone); return how many existed."""

    def collect_tombstones(self, before_wall_ms: int) -> list[Record]:
        """Remove tombstones whose version is older than `before_wall_ms`; return them."""

    def clear_replicated(self) -> int:
        """Remove every replicated record, keeping local datasets and metadata."""

    def get_meta(self, name: str) -> bytes | None: ...

    def set_meta(self, name: str, value: bytes) -> None:
        """Durable on return."""

    def close(self) -> None: ...


class MemoryStore:
    """The reference `RecordStore`: dictionaries, every change "durable" at once."""

    def __init__(self) -> None:
        self._datasets: dict[str, dict[str, Record]] = {}
        self._meta: dict[str, bytes] = {}

    def get(self, dataset: str, key: str) -> Record | None:
        return self._datasets.get(dataset, {}).get(key)

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Record]:
        found = {}
        for dataset, key in keys:
            record = self.get(dataset, key)
            if record is not None:
                found[(dataset, key)] = record
        return found

    def apply(self, records: Iterable[Record]) -> list[Record]:
        return [winner for _, winner in self.apply_changes(records)]

    def apply_changes(self, records: Iterable[Record], resolve: Resolve | None = None
                      ) -> list[tuple[Record | None, Record]]:
        changes = []
        for record in records:
            lookup_dataset(record.dataset)
            table = self._datasets.setdefault(record.dataset, {})
            previous = table.get(record.key)
            winner = (resolve_lww if resolve is None else resolve)(record, previous)
            if winner is not None:
                table[record.key] = winner
                changes.append((previous, winner))
        return changes

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
        table = self._datasets.get(dataset, {})
        found = []
        for key in sorted(table):
            if not key.startswith(prefix) or (after is not None and key <= after):
                continue
            record = table[key]
            if record.value is None and not tombstones:
                continue
            found.append(record)
            if limit is not None and len(found) >= limit:
                break
        return found

    def replicated(self, dataset: str) -> Iterator[Record]:
        check_replicated(dataset)
        table = self._datasets.get(dataset, {})
        return iter([table[key] for key in sorted(table)])

    def count(self, dataset: str, *, tombstones: bool = False) -> int:
        table = self._datasets.get(dataset, {})
        if tombstones:
            return len(table)
        return sum(1 for record in table.values() if record.value is not None)

    def remove(self, dataset: str, keys: Iterable[str]) -> int:
        table = self._datasets.get(dataset, {})
        return sum(1 for key in keys if table.pop(key, None) is not None)

    def collect_tombstones(self, before_wall_ms: int) -> list[Record]:
        collected = []
        for table in self._datasets.values():
            old = [
                record
                for record in table.values()
                if record.value is None and record.version.wall_ms < before_wall_ms
            ]
            for record in old:
                del table[record.key]
            collected.extend(old)
        return collected

    def clear_replicated(self) -> int:
        removed = 0
        for name in list(self._datasets):
            if lookup_dataset(name).replicated:
                removed += len(self._datasets.pop(name))
        return removed

    def get_meta(self, name: str) -> bytes | None:
        return self._meta.get(name)

    def set_meta(self, name: str, value: bytes) -> None:
        self._meta[name] = bytes(value)

    def close(self) -> None:
        pass
