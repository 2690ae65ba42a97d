"""The store's reads: one record, a range of a dataset, a replicated dataset whole, a batch
of keys at once, the meta values, and the counts.

Counts (`count`) come from per-dataset tallies kept in memory: taken with one scan at open
(`_tally`), then moved by every committed write (sqlite_writes.py). `status` asks for them
on every call, and a scan per dataset per call would cost O(records), which an operator
polling status feels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from ..core.catalog import dataset as lookup_dataset
from ..core.records import Record
from ..core.store import check_replicated
from .sqlite_database import StoreState, record_from_row

__all__ = ["LOOKUP_KEYS_MAX", "SCAN_BATCH_ROWS", "StoreReads"]

# Rows fetched per round trip into SQLite while iterating a dataset.
SCAN_BATCH_ROWS = 4096
# Keys per lookup query of a batch (`get_many`, and so `apply_changes`): well under SQLite's
# default limit of bound parameters (999 before 3.32), with the dataset as one more.
LOOKUP_KEYS_MAX = 500


class StoreReads(StoreState):
    """Mixed into `SqliteStore`: the state the reads use is the store's own."""

    def get(self, dataset: str, key: str) -> Record | None:
        row = self._db.execute(
            "SELECT key, wall_ms, counter, origin, value, signature FROM records"
            " WHERE dataset = ? AND key = ?",
            (dataset, key),
        ).fetchone()
        return None if row is None else record_from_row(dataset, row)

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
            found.append(record_from_row(dataset, row))
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
                yield record_from_row(dataset, row)

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
                    found[(dataset, row[0])] = record_from_row(dataset, row)
        return found

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
