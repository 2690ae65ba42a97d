"""The storage of a range digest: sorted items with O(log n) range sums (core/merkle.py
has the theory; this module is its point 4).

A two-level tree: sorted *chunks* of at most CHUNK_ITEMS_MAX items (a list of sort keys and
two unsigned 64-bit arrays holding each leaf's high and low half, so a leaf costs 16 bytes,
not a Python object), and a Fenwick tree of chunk sums and counts over the chunks. The sum
of a range is prefix(hi) - prefix(lo), each prefix one bisection, one Fenwick walk and one
partial chunk sum; adding or removing an item touches one chunk and one Fenwick path.

Beside the sums it keeps the items' coded cells (core/coded_cells.py), updated with every
item added or removed. The table grows each time the item count doubles past its size: a
larger table is filled beside it in sort-key order, `GROW_ITEMS_PER_ADD` items with each
item added (an item added or removed below that point goes into both), and replaces it once
full. Growing so costs O(1) per item, and no single add pays for all n items: a rebuild
at once held the event loop 60 ms at 16,000 items, and every member paid it for the same
write at about the same count, so a write's replication waited for it three times.

`LeafSums` knows sort keys and 128-bit leaves only, never records: `merkle.Digest` builds
on it. Not thread-safe; no clock.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from itertools import islice

from .coded_cells import ITEMS_PER_TABLE_CELL, TABLE_CELLS_MAX, TAG_MASK, CodedCells
from .errors import LocalProtocolError
from .merkle_leaves import WALL_BYTES

__all__ = ["CHUNK_ITEMS_MAX", "LeafSums"]

# A chunk splits in two above this. Partial-chunk sums cost O(CHUNK_ITEMS_MAX) fast C-level
# additions per range query, and the Fenwick tree over n / (CHUNK_ITEMS_MAX / 2) chunks stays
# small; 512 balances the two at a million records.
CHUNK_ITEMS_MAX = 512
# Items copied into a growing coded table with every item added (see the module's doc): the
# growth is done long before the count doubles again, at about 30 us per add meanwhile.
GROW_ITEMS_PER_ADD = 8
_HALF_BITS = 64
_HALF_MASK = (1 << _HALF_BITS) - 1


class LeafSums:
    """(sort key, leaf) items, one per sort key, in order, with range sums and ranks."""

    def __init__(self) -> None:
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
        self.coded = CodedCells()
        # A larger coded table being filled (None: none), holding every item whose sort key
        # is below `_grown_below`.
        self._growing: CodedCells | None = None
        self._grown_below = b""

    # -- building and updating -------------------------------------------------------------

    def _fill(self, items: Sequence[tuple[bytes, int]]) -> None:
        """Load sorted, distinct items into an empty structure, in half-full chunks."""
        half = CHUNK_ITEMS_MAX // 2
        for start in range(0, len(items), half):
            chunk = items[start : start + half]
            self._keys.append([key for key, _ in chunk])
            self._highs.append(array("Q", [leaf >> _HALF_BITS for _, leaf in chunk]))
            self._lows.append(array("Q", [leaf & _HALF_MASK for _, leaf in chunk]))
        self._maxes = [keys[-1] for keys in self._keys]
        self._chunk_sums = [self._whole_sum(chunk) for chunk in range(len(self._keys))]
        self._rebuild_index()
        self.coded = CodedCells(CodedCells.size_for(len(items)))
        self.coded.fill(items)
        self._growing = None

    def _add(self, key: bytes, leaf: int) -> None:
        self._add_sums(key, leaf)
        coded = self.coded
        coded.update(key, leaf, 1)
        growing = self._growing
        if growing is not None:
            if key < self._grown_below:
                growing.update(key, leaf, 1)
            self._grow()
        elif coded.size < TABLE_CELLS_MAX and self._count > coded.size * ITEMS_PER_TABLE_CELL:
            self._growing = CodedCells(CodedCells.size_for(self._count))
            self._grown_below = b""
            self._grow()

    def _grow(self) -> None:
        """Copy the next `GROW_ITEMS_PER_ADD` items into the growing table; once it holds
        every item, it replaces the coded table (with the estimator kept all along, which
        does not depend on the table's size)."""
        growing = self._growing
        assert growing is not None
        batch = list(islice(self.items(self._grown_below, None), GROW_ITEMS_PER_ADD))
        growing.fill(batch)
        if len(batch) < GROW_ITEMS_PER_ADD:
            growing.take_estimator(self.coded)
            self.coded, self._growing = growing, None
        else:
            self._grown_below = batch[-1][0] + b"\x00"  # the next sort key up

    def _add_sums(self, key: bytes, leaf: int) -> None:
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
        self.coded.update(key, leaf, -1)
        if self._growing is not None and key < self._grown_below:
            self._growing.update(key, leaf, -1)
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

    def held_bytes(self) -> int:
        """Bytes of memory the structure holds (sort keys, leaf arrays, index), by getsizeof."""
        size = sum(map(sys.getsizeof, (self._keys, self._highs, self._lows, self._maxes)))
        for keys, highs, lows in zip(self._keys, self._highs, self._lows, strict=True):
            size += sys.getsizeof(keys) + sys.getsizeof(highs) + sys.getsizeof(lows)
            size += sum(map(sys.getsizeof, keys))
        for numbers in (self._chunk_sums, self._tree_sums, self._tree_counts):
            size += sys.getsizeof(numbers) + sum(map(sys.getsizeof, numbers))
        growing = 0 if self._growing is None else self._growing.held_bytes()
        return size + self.coded.held_bytes() + growing

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

    def find_tag(self, lo: bytes, hi: bytes, tag: int, budget: int) -> tuple[bytes | None, int]:
        """(the sort key of an item in [lo, hi) whose leaf's low 32 bits are `tag`, or None;
        the items looked at), looking at no more than `budget` items."""
        looked = 0
        chunk = bisect_left(self._maxes, lo)
        index = bisect_left(self._keys[chunk], lo) if chunk < len(self._keys) else 0
        while chunk < len(self._keys) and looked < budget:
            keys, lows = self._keys[chunk], self._lows[chunk]
            stop = bisect_left(keys, hi, index)
            for position in range(index, min(stop, index + budget - looked)):
                looked += 1
                if lows[position] & TAG_MASK == tag:
                    return keys[position], looked
            if stop < len(keys):
                break
            chunk, index = chunk + 1, 0
        return None, looked

    def _leaf_at(self, key: bytes) -> int | None:
        """The leaf of the item at exactly this sort key, or None."""
        chunk = bisect_left(self._maxes, key)
        if chunk == len(self._keys):
            return None
        keys = self._keys[chunk]
        index = bisect_left(keys, key)
        if index == len(keys) or keys[index] != key:
            return None
        return (self._highs[chunk][index] << _HALF_BITS) | self._lows[chunk][index]
