"""Coded cells: an invertible Bloom lookup table (IBLT) over a digest's items, kept in step
with the digest, and the estimator that sizes it (core/reconcile_coded.py uses both, and
core/coded_difference.py what two sides' cells tell).

Theory of operation:

1. An item's *coded id* is (wall, tag): the 48-bit `version.wall_ms` at the front of its sort
   key and the low 32 bits of its leaf digest. From the id alone `coded_hash` derives one cell
   index in each of SUBTABLES sub-tables and a CHECK_BITS check, so a side can place and check
   an id it has never held.
2. A cell holds, over the items placed in it, the sums of their walls (mod 2**48), tags
   (mod 2**32) and checks (mod 2**24). Two sides' cells subtract: items both hold cancel, so
   the difference of two tables is a table over the symmetric difference alone, whatever the
   item count; core/coded_difference.py peels it into the differing ids.
3. Any size from one table: a table of m cells per sub-table places an item by linear
   hashing of its index bits h: with F the largest power of two <= m, cell h mod 2F if that
   is below m, else h mod F. The node keeps one table of `size` cells per sub-table (a power
   of two that grows with the item count); every m <= size is a fold of it (sums of the cells
   equal mod 2F). Growing a table from m to m' cells is the *split steps* m .. m'-1: step s
   moves the items with h mod 2F_s == s (F_s the largest power of two <= s) from cell s - F_s
   to a new cell s, so only the new cell is sent and the receiver subtracts it from cell
   s - F_s (core/coded_difference.py `split_into`). No cell sent is wasted: a session starts
   small and grows the table cell by cell.
4. The estimator: ESTIMATE_LEVELS x ESTIMATE_BUCKETS one-byte sums. An item falls on level j
   with probability 2**-(j+1) (the trailing zeros of 8 bits of its leaf's high half; the last
   level takes the rest) and on one bucket of it; two sides' estimators give the number of
   differences (core/coded_difference.py `estimate`). The estimator uses the leaf's high
   half, which both sides hold for a shared item; ids use the low half.
5. A cell is kept as one packed int (each sum with 40 bits of headroom, room for 2**40
   items), so adding or removing an item is one addition per sub-table.

Pure computation: no clock, no I/O; the digest (core/leaf_sums.py) calls `update`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

__all__ = [
    "CELL_BYTES",
    "ESTIMATE_BYTES",
    "SUBTABLES",
    "TABLE_CELLS_MAX",
    "Cell",
    "CodedCells",
    "cell_indices",
    "coded_check",
    "coded_hash",
    "place",
]

SUBTABLES = 4
WALL_BITS, TAG_BITS, CHECK_BITS = 48, 32, 24
WALL_MASK = (1 << WALL_BITS) - 1
TAG_MASK = (1 << TAG_BITS) - 1
CHECK_MASK = (1 << CHECK_BITS) - 1
CELL_BYTES = (WALL_BITS + TAG_BITS + CHECK_BITS) // 8
# Index bits per sub-table in the 64-bit coded hash (four sub-tables take 48 of its bits).
INDEX_BITS = 12
_INDEX_MASK = (1 << INDEX_BITS) - 1
# The largest table, in cells per sub-table: 4 x 4096 cells decode about 11,000 differences
# (peeling needs about 1.3 cells per difference), beyond which range descent is as cheap.
# Four sub-tables, not three: two differences that share all their cells stop peeling, and
# with four that is (1/m)**4 per pair, not (1/m)**3 (0.5% of sessions at d = 1,000).
TABLE_CELLS_MAX = 1 << INDEX_BITS
# The smallest table; a digest starts with it and holds it while small (48 cells).
TABLE_CELLS_MIN = 16
# A table grows to keep at most this many items per cell of a sub-table: a difference of
# about 1% of the items still decodes from the table, and 4096 cells serve half a million.
ITEMS_PER_TABLE_CELL = 128

# Packed cell: wall sum | tag sum << 88 | check sum << 160 (40 bits of headroom per field).
_HEADROOM = 40
_TAG_SHIFT = WALL_BITS + _HEADROOM
_CHECK_SHIFT = _TAG_SHIFT + TAG_BITS + _HEADROOM

# Levels and buckets of the estimator; `_estimate_slot` takes 8 level bits and 7 bucket bits.
# 128 buckets: about 200 differences counted at the level used, so the estimate is within
# about 7% (one standard deviation).
ESTIMATE_LEVELS = 8
ESTIMATE_BUCKETS = 128
ESTIMATE_BYTES = ESTIMATE_LEVELS * ESTIMATE_BUCKETS

_M64 = (1 << 64) - 1
_MIX_FIRST, _MIX_SECOND, _MIX_CHECK = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_CHECK_SHIFT_IN_PRODUCT = 64 - CHECK_BITS
# Trailing zeros of a byte, 7 for zero (the last estimator level takes the rest).
_LEVEL_OF_BYTE = bytes(min((byte & -byte).bit_length() - 1, 7) if byte else 7
                       for byte in range(256))  # fmt: skip

Cell = tuple[int, int, int]  # (wall sum, tag sum, check sum), each reduced to its width


def coded_hash(wall: int, tag: int) -> int:
    """64 mixed bits of a coded id: SUBTABLES cell indices of INDEX_BITS each, from which
    `coded_check` also derives the check (the top bits of one more product). One
    multiply-xorshift-multiply round (as in splitmix64's finalizer): the tag is BLAKE2b output
    already, so the mix only spreads it and the wall over all bits and makes the check a
    non-linear function of the sums it checks."""
    z = ((wall << 32 | tag) * _MIX_FIRST) & _M64
    z = ((z ^ (z >> 29)) * _MIX_SECOND) & _M64
    return z ^ (z >> 32)


def place(index_bits: int, cells: int) -> int:
    """The cell of a table of `cells` cells per sub-table for these index bits (rule 3)."""
    half = 1 << (cells.bit_length() - 1)
    slot = index_bits & (2 * half - 1)
    return slot if slot < cells else slot - half


def coded_check(hashed: int) -> int:
    return ((hashed * _MIX_CHECK) & _M64) >> _CHECK_SHIFT_IN_PRODUCT


def _unpack(packed: int) -> Cell:
    return (
        packed & WALL_MASK,
        (packed >> _TAG_SHIFT) & TAG_MASK,
        (packed >> _CHECK_SHIFT) & CHECK_MASK,
    )


class CodedCells:
    """The coded table (SUBTABLES x `size` packed cells) and the estimator of one digest."""

    __slots__ = ("_estimator", "_tables", "size")

    def __init__(self, size: int = TABLE_CELLS_MIN) -> None:
        self.size = size
        self._tables = [[0] * size for _ in range(SUBTABLES)]
        self._estimator = [0] * ESTIMATE_BYTES

    @staticmethod
    def size_for(count: int) -> int:
        """The table size (cells per sub-table) for a digest of `count` items."""
        size = TABLE_CELLS_MIN
        while size < TABLE_CELLS_MAX and size * ITEMS_PER_TABLE_CELL < count:
            size *= 2
        return size

    def fill(self, items: Iterable[tuple[bytes, int]]) -> None:
        """Add many (sort key, leaf) items: `update(key, leaf, 1)` for each, inlined (a
        million items at build time)."""
        mask = self.size - 1
        first, second, third, fourth = self._tables
        estimator = self._estimator
        levels = _LEVEL_OF_BYTE
        for key, leaf in items:
            wall = int.from_bytes(key[:6], "big")
            tag = leaf & TAG_MASK
            z = ((wall << 32 | tag) * _MIX_FIRST) & _M64
            z = ((z ^ (z >> 29)) * _MIX_SECOND) & _M64
            hashed = z ^ (z >> 32)
            check = ((hashed * _MIX_CHECK) & _M64) >> _CHECK_SHIFT_IN_PRODUCT
            packed = wall | tag << _TAG_SHIFT | check << _CHECK_SHIFT
            first[hashed & mask] += packed
            second[(hashed >> 12) & mask] += packed
            third[(hashed >> 24) & mask] += packed
            fourth[(hashed >> 36) & mask] += packed
            high = leaf >> 64
            estimator[levels[(high >> 16) & 0xFF] << 7 | (high >> 8) & 127] += high & 0xFF

    def update(self, key: bytes, leaf: int, sign: int) -> None:
        """Add (sign 1) or remove (sign -1) the item of this sort key and leaf: what
        `coded_hash`, `coded_check`, `cell_indices` and `_estimate_slot` say, inlined as in
        `fill` (every record a member applies comes through here)."""
        wall = int.from_bytes(key[:6], "big")
        tag = leaf & TAG_MASK
        z = ((wall << 32 | tag) * _MIX_FIRST) & _M64
        z = ((z ^ (z >> 29)) * _MIX_SECOND) & _M64
        hashed = z ^ (z >> 32)
        check = ((hashed * _MIX_CHECK) & _M64) >> _CHECK_SHIFT_IN_PRODUCT
        packed = wall | tag << _TAG_SHIFT | check << _CHECK_SHIFT
        if sign < 0:
            packed = -packed
        mask = self.size - 1
        first, second, third, fourth = self._tables
        first[hashed & mask] += packed
        second[(hashed >> 12) & mask] += packed
        third[(hashed >> 24) & mask] += packed
        fourth[(hashed >> 36) & mask] += packed
        high = leaf >> 64
        slot = _LEVEL_OF_BYTE[(high >> 16) & 0xFF] << 7 | (high >> 8) & 127
        self._estimator[slot] += sign * (high & 0xFF)

    def take_estimator(self, other: CodedCells) -> None:
        """Use `other`'s estimator as ours: it counts the same items whatever the tables'
        sizes (a table filled beside another takes the one kept up to date all along)."""
        self._estimator = other._estimator

    def estimator(self) -> bytes:
        """The estimator as sent: each bucket's sum mod 256."""
        return bytes(value & 0xFF for value in self._estimator)

    def table(self, cells: int) -> list[list[Cell]]:
        """The table of `cells` cells per sub-table (1 <= cells <= size), as cells."""
        assert 1 <= cells <= self.size
        half = 1 << (cells.bit_length() - 1)
        width = half if cells == half else 2 * half
        out = []
        for packed in self._tables:
            folded = [sum(packed[slot :: width]) for slot in range(width)]
            for slot in range(cells, width):
                folded[slot - half] += folded[slot]
            out.append([_unpack(value) for value in folded[:cells]])
        return out

    def split_cells(self, start: int, stop: int) -> list[list[Cell]]:
        """The new cells of split steps start .. stop-1 (rule 3), per sub-table."""
        assert 1 <= start <= stop <= self.size
        out: list[list[Cell]] = [[] for _ in range(SUBTABLES)]
        for step in range(start, stop):
            width = 2 << (step.bit_length() - 1)
            for cells, packed in zip(out, self._tables, strict=True):
                cells.append(_unpack(sum(packed[step::width])))
        return out

    def held_bytes(self) -> int:
        size = sys.getsizeof(self._tables) + sys.getsizeof(self._estimator)
        size += sum(map(sys.getsizeof, self._estimator))
        for table in self._tables:
            size += sys.getsizeof(table) + sum(map(sys.getsizeof, table))
        return size


def cell_indices(hashed: int) -> tuple[int, ...]:
    return tuple((hashed >> (INDEX_BITS * t)) & _INDEX_MASK for t in range(SUBTABLES))


def _estimate_slot(high: int) -> int:
    """The estimator bucket of a leaf's high half: level from bits 16-23, bucket 8-14."""
    return _LEVEL_OF_BYTE[(high >> 16) & 0xFF] * ESTIMATE_BUCKETS + ((high >> 8) & 127)
