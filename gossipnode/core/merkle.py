"""Incremental range digests over one dataset scope (docs/architecture.md).

Theory of operation:

1. Every record is one *item*. Its leaf digest is BLAKE2b-128 over (dataset, key, version,
   BLAKE2b-256 of the value, or a tombstone mark), so any change to any of those changes it.
2. Items are ordered by their *sort key*: the 6-byte big-endian `version.wall_ms` followed by
   the UTF-8 key. Records written at about the same time sit next to each other, so the
   differences left by replication lag (the newest writes) fall into a few ranges, while a
   key-level lookup still works (a key's item is at (wall_ms, key)). A key has one item: the
   caller replaces the old version's item when it applies a new version.
3. The digest of any range of sort keys is the *sum* of its leaf digests, modulo 2**128
   (an additive multiset hash, as Negentropy and AdHash use), together with the item count.
   A sum is what makes every update O(log n): adding, replacing or removing one item hashes
   one leaf and adds or subtracts it along one path of the tree; nothing is rebuilt.
   Truncating a range sum to its low 64 bits gives the sum modulo 2**64, so the protocol can
   send short interior digests while the whole-scope root keeps all 128 bits.
4. Storage is a two-level tree: sorted *chunks* of at most CHUNK_ITEMS_MAX items and a
   Fenwick tree of chunk sums and counts over the chunks; the digest of a range is
   prefix(hi) - prefix(lo), each prefix one bisection, one Fenwick walk and one partial
   chunk sum.

Points 1 to 3 (what an item is) are core/merkle_leaves.py, point 4 (how items are kept and
summed) is core/leaf_sums.py; `Digest` here puts records into that storage and answers the
range questions reconciliation asks.

The structure holds whatever subset of records the caller inserts (a scope is the caller's
choice) and never reads a store. It is not thread-safe and needs no clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from .errors import LocalProtocolError
from .leaf_sums import CHUNK_ITEMS_MAX, LeafSums
from .merkle_leaves import LEAF_BYTES, SUM_MASK, WALL_BYTES, leaf_digest, separator, sort_key
from .records import Record

__all__ = [
    "CHUNK_ITEMS_MAX",
    "SUM_MASK",
    "WALL_BYTES",
    "Digest",
    "leaf_digest",
    "separator",
    "sort_key",
]


class Digest(LeafSums):
    """The range digests of one dataset scope. See the module docstring for the theory.

    Bounds are sort keys or prefixes of them; a range is [lo, hi) with hi=None meaning
    "to the end". The caller keeps the structure in step with its store: `insert` a record
    that is new to the scope, `replace(previous, record)` when a version wins over the one held,
    `remove(record)` when a record leaves the scope (purge, tombstone collection).
    """

    def __init__(self, dataset: str) -> None:
        super().__init__()
        self.dataset = dataset

    # -- building and updating -------------------------------------------------------------

    @classmethod
    def build(
        cls,
        dataset: str,
        records: Iterable[Record],
        progress: Callable[[int], None] | None = None,
        progress_every: int = 65_536,
    ) -> Digest:
        """A digest of `records` (any order), calling `progress(done)` every `progress_every`.

        Raises LocalProtocolError if a record belongs to another dataset or a key repeats.
        """
        items: list[tuple[bytes, int]] = []
        for done, record in enumerate(records, 1):
            if record.dataset != dataset:
                raise LocalProtocolError(f"record of {record.dataset!r} in a {dataset!r} digest")
            items.append((sort_key(record), leaf_digest(record)))
            if progress is not None and done % progress_every == 0:
                progress(done)
        items.sort()
        for (before, _), (after, _) in itertools.pairwise(items):
            if before == after:
                raise LocalProtocolError(f"record {after[WALL_BYTES:]!r} given twice")
        digest = cls(dataset)
        digest._fill(items)
        if progress is not None:
            progress(len(items))
        return digest

    def insert(self, record: Record) -> None:
        """Add a record that is not in the digest yet (LocalProtocolError if it is)."""
        self._check_dataset(record)
        self._add(sort_key(record), leaf_digest(record))

    def remove(self, record: Record) -> None:
        """Remove the item of `record` (found by its key and version.wall_ms).

        Raises LocalProtocolError if the digest holds no item at that place."""
        self._check_dataset(record)
        self._discard(sort_key(record))

    def replace(self, previous: Record | None, record: Record) -> None:
        """`record` won over `previous` (None: the key was new): move the key's item."""
        if previous is not None:
            self.remove(previous)
        self.insert(record)

    def _check_dataset(self, record: Record) -> None:
        if record.dataset != self.dataset:
            raise LocalProtocolError(f"record of {record.dataset!r} in a {self.dataset!r} digest")

    # -- reading ---------------------------------------------------------------------------

    @property
    def root(self) -> bytes:
        """The whole scope's digest: the 16-byte sum of all leaves (with `count`, the root)."""
        return (self._sum & SUM_MASK).to_bytes(LEAF_BYTES, "big")

    @property
    def count(self) -> int:
        return self._count

    def __len__(self) -> int:
        return self._count

    def fingerprint(self, lo: bytes, hi: bytes | None) -> tuple[int, int]:
        """(sum mod 2**128, count) of the items in [lo, hi)."""
        high_sum, high_count = self._prefix(hi)
        low_sum, low_count = self._prefix(lo) if lo else (0, 0)
        return (high_sum - low_sum) & SUM_MASK, high_count - low_count

    def rank(self, bound: bytes | None) -> int:
        """How many items sort below `bound` (None: all)."""
        return self._prefix(bound)[1]

    def split(self, lo: bytes, hi: bytes | None, parts: int) -> list[bytes]:
        """Up to `parts - 1` increasing cut bounds inside (lo, hi) that split its items evenly.

        Each cut is the shortest separator between two neighbouring items, so it is short and
        lies strictly above lo and below hi."""
        first = self.rank(lo) if lo else 0
        count = self.rank(hi) - first
        cuts: list[bytes] = []
        previous_rank = first
        for part in range(1, parts):
            cut_rank = first + (part * count) // parts
            if cut_rank <= previous_rank:
                continue
            cuts.append(separator(self.key_at(cut_rank - 1), self.key_at(cut_rank)))
            previous_rank = cut_rank
        return cuts

    def find_coded(self, wall: int, tag: int, budget: int) -> tuple[bytes | None, int]:
        """(the sort key of the item with this coded id (core/coded_cells.py), or None; the
        items looked at, at most `budget`): items of one wall_ms are looked at in order."""
        lo = wall.to_bytes(WALL_BYTES, "big")
        # UTF-8 keys hold no 0xff byte, so seven of them bound the last wall_ms's items.
        last = wall + 1 == 1 << 8 * WALL_BYTES
        hi = b"\xff" * (WALL_BYTES + 1) if last else (wall + 1).to_bytes(WALL_BYTES, "big")
        return self.find_tag(lo, hi, tag, budget)

    def contains(self, record: Record) -> bool:
        """True if the digest holds exactly this record's item (same place, same leaf)."""
        leaf = self._leaf_at(sort_key(record))
        return leaf is not None and leaf == leaf_digest(record)
