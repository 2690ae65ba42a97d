"""What two sides' coded cells tell (core/coded_cells.py): how many items differ, and which.

Rules:
1. A cell of the difference of two tables that holds one item is *pure*: its sums are that
   item's id and check, added (the peer's item) or subtracted (ours). Peeling a pure cell
   removes its item from its other cells, which may turn pure in turn (Eppstein, Goodrich,
   Uyeda, Varghese, "What's the difference?", SIGCOMM 2011); with about 1.3 cells per
   difference peeling finds them all, and a difference is decoded only if every cell ends
   at zero.
2. A table received grows by the split cells of steps start .. stop-1 (coded_cells.py rule
   3): the receiver subtracts the new cell s from cell s - F_s and appends it.
3. A bucket of the difference of two estimators is zero where no differing item fell, so
   linear counting of the zero buckets of the densest level that still has enough of them,
   over that level and the sparser ones (together a 2**-j sample), estimates the number of
   differences.
4. Cells travel sub-table by sub-table, CELL_BYTES each (wall, tag, check; big-endian).

Pure computation: no clock, no I/O.
"""

from __future__ import annotations

import math

from .coded_cells import (
    CELL_BYTES,
    CHECK_MASK,
    ESTIMATE_BUCKETS,
    ESTIMATE_BYTES,
    ESTIMATE_LEVELS,
    SUBTABLES,
    TAG_MASK,
    WALL_MASK,
    Cell,
    cell_indices,
    coded_check,
    coded_hash,
    place,
)

__all__ = ["decode_cells", "encode_cells", "estimate", "peel", "split_into"]

# The densest level used must have at least this many zero buckets (a quarter): fewer, and
# linear counting's error grows fast (rule 3).
_ZERO_BUCKETS_MIN = ESTIMATE_BUCKETS // 4

_ZERO: Cell = (0, 0, 0)


def estimate(ours: bytes, theirs: bytes) -> int | None:
    """The estimated number of differences between two estimators (rule 3), or None when
    even the sparsest level is too full to count (far more differences than a table
    decodes)."""
    assert len(ours) == len(theirs) == ESTIMATE_BYTES
    zeros = [
        sum(
            1
            for bucket in range(level * ESTIMATE_BUCKETS, (level + 1) * ESTIMATE_BUCKETS)
            if ours[bucket] == theirs[bucket]
        )
        for level in range(ESTIMATE_LEVELS)
    ]
    for level, zero in enumerate(zeros):
        if zero >= _ZERO_BUCKETS_MIN:
            counted = sum(
                ESTIMATE_BUCKETS * math.log(ESTIMATE_BUCKETS / max(z, 0.5))
                for z in zeros[level:]
            )
            return math.ceil(counted * (1 << level))
    return None


def encode_cells(tables: list[list[Cell]]) -> bytes:
    """Cells, sub-table by sub-table, CELL_BYTES each (wall, tag, check; big-endian: rule 4)."""
    return b"".join(
        wall.to_bytes(6, "big") + tag.to_bytes(4, "big") + check.to_bytes(3, "big")
        for cells in tables
        for wall, tag, check in cells
    )


def decode_cells(data: bytes, per_table: int) -> list[list[Cell]]:
    """The inverse of `encode_cells` for SUBTABLES x per_table cells (len(data) must match)."""
    assert len(data) == SUBTABLES * per_table * CELL_BYTES
    cells = [
        (
            int.from_bytes(data[at : at + 6], "big"),
            int.from_bytes(data[at + 6 : at + 10], "big"),
            int.from_bytes(data[at + 10 : at + 13], "big"),
        )
        for at in range(0, len(data), CELL_BYTES)
    ]
    return [cells[t * per_table : (t + 1) * per_table] for t in range(SUBTABLES)]


def _minus(a: Cell, b: Cell) -> Cell:
    return ((a[0] - b[0]) & WALL_MASK, (a[1] - b[1]) & TAG_MASK, (a[2] - b[2]) & CHECK_MASK)


def _plus(a: Cell, b: Cell) -> Cell:
    return ((a[0] + b[0]) & WALL_MASK, (a[1] + b[1]) & TAG_MASK, (a[2] + b[2]) & CHECK_MASK)


def split_into(tables: list[list[Cell]], start: int, new: list[list[Cell]]) -> None:
    """Grow `tables` (start cells per sub-table) by the split cells `new` (rule 2)."""
    for cells, added in zip(tables, new, strict=True):
        assert len(cells) == start
        for step, cell in enumerate(added, start):
            half = 1 << (step.bit_length() - 1)
            cells[step - half] = _minus(cells[step - half], cell)
            cells.append(cell)


def peel(theirs: list[list[Cell]], ours: list[list[Cell]],
         ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]] | None:  # fmt: skip
    """Decode the difference of two tables of equal size: (ids only the peer holds, ids only
    we hold), each sorted, or None if peeling stops before every cell is zero (rule 1).

    Work is bounded by the table: at most one item per cell is ever peeled."""
    cells = len(ours[0])
    diff = [
        [_minus(a, b) for a, b in zip(mine, other, strict=True)]
        for mine, other in zip(theirs, ours, strict=True)
    ]
    found: list[set[tuple[int, int]]] = [set(), set()]  # the peer's, ours
    stack = [(t, j) for t in range(SUBTABLES) for j in range(cells) if diff[t][j] != _ZERO]
    while stack:
        t, j = stack.pop()
        pure = _pure(diff[t][j], t, j, cells)
        if pure is None:
            continue
        side, item, hashed = pure
        wall, tag, _ = item
        if (wall, tag) in found[side] or len(found[0]) + len(found[1]) >= SUBTABLES * cells:
            return None  # inconsistent cells (a changed digest, or a lying peer)
        found[side].add((wall, tag))
        for u, bits in enumerate(cell_indices(hashed)):
            k = place(bits, cells)
            diff[u][k] = _minus(diff[u][k], item) if side == 0 else _plus(diff[u][k], item)
            stack.append((u, k))
    if any(cell != _ZERO for table in diff for cell in table):
        return None
    return sorted(found[0]), sorted(found[1])


def _pure(cell: Cell, subtable: int, index: int, cells: int) -> tuple[int, Cell, int] | None:
    """(0 for the peer's item or 1 for ours, the item, its coded hash) if the cell of the
    difference at (subtable, index) holds exactly one item, else None."""
    if cell == _ZERO:
        return None
    for side, item in enumerate((cell, _minus(_ZERO, cell))):
        hashed = coded_hash(item[0], item[1])
        if coded_check(hashed) == item[2] and place(cell_indices(hashed)[subtable], cells) == index:
            return side, item, hashed
    return None
