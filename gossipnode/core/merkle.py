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
4. Storage is a two-level tree: sorted *chunks* of at most CHUNK_ITEMS_MAX items (a list of
   sort keys and two unsigned 64-bit arrays holding each leaf's high and low half, so a leaf
   costs 16 bytes, not a Python object), and a Fenwick tree of chunk sums and counts over
   the chunks. The digest of a range is prefix(hi) - prefix(lo), each
   prefix one bisection, one Fenwick walk and one partial chunk sum.

The structure holds whatever subset of records the caller inserts (a scope is the caller's
choice) and never reads a store. It is not thread-safe and needs no clock.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator

from .errors import LocalProtocolError
from .records import Record

__all__ = [
    "CHUNK_ITEMS_MAX",
    "SUM_MASK",
    "Digest",
    "leaf_digest",
    "separator",
    "sort_key",
]

# Leaf digests and the root sum are 128 bits: a random collision of two different scopes'
# roots has probability 2**-128, so the root catches every difference in practice.
LEAF_BYTES = 16
SUM_MASK = (1 << (8 * LEAF_BYTES)) - 1
# Bytes of wall time at the front of a sort key; 48 bits is records.WALL_MS_MAX.
WALL_BYTES = 6
# A chunk splits in two above this. Partial-chunk sums cost O(CHUNK_ITEMS_MAX) fast C-level
# additions per range query, and the Fenwick tree over n / (CHUNK_ITEMS_MAX / 2) chunks stays
# small; 512 balances the two at a million records.
CHUNK_ITEMS_MAX = 512
_HALF_BITS = 64
_HALF_MASK = (1 << _HALF_BITS) - 1
_LEAF_PERSON = b"gossipnode-leaf"
_TOMBSTONE_MARK = b"\x00"
_VALUE_MARK = b"\x01"
# Length-prefixed dataset names, by name: a handful of entries, computed once each.
_DATASET_PREFIXES: dict[str, bytes] = {}


def sort_key(record: Record) -> bytes:
    """The item's place in the order: (version.wall_ms, key)."""
    return record.version.wall_ms.to_bytes(WALL_BYTES, "big") + record.key.encode()


def leaf_digest(record: Record) -> int:
    """BLAKE2b-128 of (dataset, key, version, value hash), as an integer.

    Hashed input: length-prefixed dataset and key, wall_ms (8 bytes), counter (4), origin
    (32), then 0x00 for a tombstone or 0x01 and BLAKE2b-256 of the value."""
    prefix = _DATASET_PREFIXES.get(record.dataset)
    if prefix is None:
        name = record.dataset.encode()
        prefix = _DATASET_PREFIXES[record.dataset] = len(name).to_bytes(4, "big") + name
    key = record.key.encode()
    version = record.version
    value = record.value
    if value is None:
        tail = _TOMBSTONE_MARK
    else:
        tail = _VALUE_MARK + hashlib.blake2b(value, digest_size=32).digest()
    data = b"".join(
        (
            prefix,
            len(key).to_bytes(4, "big"),
            key,
            version.wall_ms.to_bytes(8, "big"),
            version.counter.to_bytes(4, "big"),
            version.origin,
            tail,
        )
    )
    digest = hashlib.blake2b(data, digest_size=LEAF_BYTES, person=_LEAF_PERSON).digest()
    return int.from_bytes(digest, "big")


def separator(before: bytes, after: bytes) -> bytes:
    """The shortest prefix `p` of `after` with before < p <= after (needs before < after)."""
    assert before < after
    common = 0
    limit = min(len(before), len(after))
    while common < limit and before[common] == after[common]:
        common += 1
    return after[: common + 1]


class Digest:
    """The range digests of one dataset scope. See the module docstring for the theory.

    Bounds are sort keys or prefixes of them; a range is [lo, hi) with hi=None meaning
    "to the end". The caller keeps the structure in step with its store: `insert` a record
    that is new to the scope, `replace(previous, record)` when a version wins over the one held,
    `remove(record)` when a record leaves the scope (purge, tombstone collection).
    """

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self._keys: list[list[bytes]] = []
        self._highs: list[array[int]] = []  # per chunk, each leaf's high 64 bits
        self._lows: list[array[int]] = []  # per chunk, each leaf's low 64 bits
        self._maxes: list[bytes] = []
        self._chunk_sums: list[int] = []
        # Fenwick trees (1-based) over chunk sums and chunk item counts.
        self._tree_sums: list[int] = [0]
        self._tree_counts: list[int] = [0]
        self._sum = 0
        self._count = 0

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
        half = CHUNK_ITEMS_MAX // 2
        for start in range(0, len(items), half):
            chunk = items[start : start + half]
            digest._keys.append([key for key, _ in chunk])
            digest._highs.append(array("Q", [leaf >> _HALF_BITS for _, leaf in chunk]))
            digest._lows.append(array("Q", [leaf & _HALF_MASK for _, leaf in chunk]))
        digest._maxes = [keys[-1] for keys in digest._keys]
        digest._chunk_sums = [digest._whole_sum(chunk) for chunk in range(len(digest._keys))]
        digest._rebuild_index()
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

    def _add(self, key: bytes, leaf: int) -> None:
        if not self._keys:
            self._keys.append([key])
            self._highs.append(array("Q", [leaf >> _HALF_BITS]))
            self._lows.append(array("Q", [leaf & _HALF_MASK]))
            self._maxes.append(key)
            self._chunk_sums = [leaf]
            self._rebuild_index()
            return
        chunk = min(bisect_left(self._maxes, key), len(self._keys) - 1)
        keys = self._keys[chunk]
        index = bisect_left(keys, key)
        if index < len(keys) and keys[index] == key:
            raise LocalProtocolError(f"record {key[WALL_BYTES:]!r} is in the digest already")
        keys.insert(index, key)
        self._highs[chunk].insert(index, leaf >> _HALF_BITS)
        self._lows[chunk].insert(index, leaf & _HALF_MASK)
        self._maxes[chunk] = keys[-1]
        self._sum += leaf
        self._count += 1
        if len(keys) > CHUNK_ITEMS_MAX:
            half = len(keys) // 2
            highs, lows = self._highs[chunk], self._lows[chunk]
            self._keys[chunk : chunk + 1] = [keys[:half], keys[half:]]
            self._highs[chunk : chunk + 1] = [highs[:half], highs[half:]]
            self._lows[chunk : chunk + 1] = [lows[:half], lows[half:]]
            self._maxes[chunk : chunk + 1] = [keys[half - 1], keys[-1]]
            self._chunk_sums[chunk : chunk + 1] = [
                self._whole_sum(chunk),
                self._whole_sum(chunk + 1),
            ]
            self._rebuild_index()
        else:
            self._chunk_sums[chunk] += leaf
            self._fenwick_add(chunk, leaf, 1)

    def _discard(self, key: bytes) -> None:
        chunk = bisect_left(self._maxes, key)
        keys = self._keys[chunk] if chunk < len(self._keys) else []
        index = bisect_left(keys, key)
        if index == len(keys) or keys[index] != key:
            raise LocalProtocolError(f"record {key[WALL_BYTES:]!r} is not in the digest")
        leaf = (self._highs[chunk].pop(index) << _HALF_BITS) | self._lows[chunk].pop(index)
        del keys[index]
        self._sum -= leaf
        self._count -= 1
        if not keys:
            del self._keys[chunk], self._highs[chunk], self._lows[chunk], self._maxes[chunk]
            del self._chunk_sums[chunk]
            self._rebuild_index()
        else:
            self._maxes[chunk] = keys[-1]
            self._chunk_sums[chunk] -= leaf
            self._fenwick_add(chunk, -leaf, -1)

    def _rebuild_index(self) -> None:
        """Rebuild the Fenwick trees from the chunk sums: O(chunks), only when chunks split or
        vanish (once per CHUNK_ITEMS_MAX / 2 inserts at most)."""
        size = len(self._chunk_sums)
        sums = [0, *self._chunk_sums]
        counts = [0, *(len(keys) for keys in self._keys)]
        for index in range(1, size + 1):
            parent = index + (index & -index)
            if parent <= size:
                sums[parent] += sums[index]
                counts[parent] += counts[index]
        self._tree_sums, self._tree_counts = sums, counts
        self._sum = sum(self._chunk_sums)
        self._count = sum(len(keys) for keys in self._keys)

    def _whole_sum(self, chunk: int) -> int:
        return (sum(self._highs[chunk]) << _HALF_BITS) + sum(self._lows[chunk])

    def _partial_sum(self, chunk: int, stop: int) -> int:
        """The sum of the first `stop` leaves of a chunk, summing whichever side is shorter."""
        highs, lows = self._highs[chunk], self._lows[chunk]
        if 2 * stop <= len(lows):
            return (sum(highs[:stop]) << _HALF_BITS) + sum(lows[:stop])
        rest = (sum(highs[stop:]) << _HALF_BITS) + sum(lows[stop:])
        return self._chunk_sums[chunk] - rest

    def _fenwick_add(self, chunk: int, leaf: int, count: int) -> None:
        index = chunk + 1
        size = len(self._tree_sums) - 1
        while index <= size:
            self._tree_sums[index] += leaf
            self._tree_counts[index] += count
            index += index & -index

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

    def held_bytes(self) -> int:
        """Bytes of memory the structure holds (sort keys, leaf arrays, index), by getsizeof."""
        size = sum(map(sys.getsizeof, (self._keys, self._highs, self._lows, self._maxes)))
        for keys, highs, lows in zip(self._keys, self._highs, self._lows, strict=True):
            size += sys.getsizeof(keys) + sys.getsizeof(highs) + sys.getsizeof(lows)
            size += sum(map(sys.getsizeof, keys))
        for numbers in (self._chunk_sums, self._tree_sums, self._tree_counts):
            size += sys.getsizeof(numbers) + sum(map(sys.getsizeof, numbers))
        return size

    def _prefix(self, bound: bytes | None) -> tuple[int, int]:
        """(sum, count) of the items whose sort key is below `bound` (None: all items)."""
        if bound is None:
            return self._sum, self._count
        chunk = bisect_left(self._maxes, bound)
        total, count = 0, 0
        index = chunk
        while index > 0:
            total += self._tree_sums[index]
            count += self._tree_counts[index]
            index -= index & -index
        if chunk < len(self._keys):
            inside = bisect_left(self._keys[chunk], bound)
            total += self._partial_sum(chunk, inside)
            count += inside
        return total, count

    def fingerprint(self, lo: bytes, hi: bytes | None) -> tuple[int, int]:
        """(sum mod 2**128, count) of the items in [lo, hi)."""
        high_sum, high_count = self._prefix(hi)
        low_sum, low_count = self._prefix(lo) if lo else (0, 0)
        return (high_sum - low_sum) & SUM_MASK, high_count - low_count

    def rank(self, bound: bytes | None) -> int:
        """How many items sort below `bound` (None: all)."""
        return self._prefix(bound)[1]

    def _locate(self, rank: int) -> tuple[int, int]:
        """(chunk, index) of the item of this rank (0 <= rank < count), by a Fenwick descent."""
        assert 0 <= rank < self._count
        position, remaining = 0, rank
        step = 1 << (len(self._tree_counts) - 1).bit_length()
        while step:
            following = position + step
            if following < len(self._tree_counts) and self._tree_counts[following] <= remaining:
                position = following
                remaining -= self._tree_counts[following]
            step >>= 1
        return position, remaining

    def key_at(self, rank: int) -> bytes:
        chunk, index = self._locate(rank)
        return self._keys[chunk][index]

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

    def items(self, lo: bytes, hi: bytes | None) -> Iterator[tuple[bytes, int]]:
        """(sort key, leaf digest) of each item in [lo, hi), in order."""
        if not self._keys:
            return
        chunk = bisect_left(self._maxes, lo) if lo else 0
        if chunk == len(self._keys):
            return
        index = bisect_left(self._keys[chunk], lo) if lo else 0
        while chunk < len(self._keys):
            keys, highs, lows = self._keys[chunk], self._highs[chunk], self._lows[chunk]
            stop = len(keys) if hi is None else bisect_left(keys, hi, index)
            for position in range(index, stop):
                yield keys[position], (highs[position] << _HALF_BITS) | lows[position]
            if stop < len(keys):
                return
            chunk, index = chunk + 1, 0

    def find_leaf(self, lo: bytes, hi: bytes | None, low_bits: int) -> bytes | None:
        """The sort key of an item in [lo, hi) whose leaf's low 64 bits are `low_bits`.

        A C-level scan of the low halves: a few microseconds per thousand items."""
        if not self._keys or not 0 <= low_bits <= _HALF_MASK:
            return None
        chunk = bisect_left(self._maxes, lo) if lo else 0
        index = bisect_left(self._keys[chunk], lo) if lo and chunk < len(self._keys) else 0
        while chunk < len(self._keys):
            keys, lows = self._keys[chunk], self._lows[chunk]
            stop = len(keys) if hi is None else bisect_left(keys, hi, index)
            try:
                return keys[lows.index(low_bits, index, stop)]
            except ValueError:
                pass
            if stop < len(keys):
                return None
            chunk, index = chunk + 1, 0
        return None

    def contains(self, record: Record) -> bool:
        """True if the digest holds exactly this record's item (same place, same leaf)."""
        key = sort_key(record)
        chunk = bisect_left(self._maxes, key)
        if chunk == len(self._keys):
            return False
        keys = self._keys[chunk]
        index = bisect_right(keys, key) - 1
        return (
            index >= 0
            and keys[index] == key
            and (self._highs[chunk][index] << _HALF_BITS) | self._lows[chunk][index]
            == leaf_digest(record)
        )
