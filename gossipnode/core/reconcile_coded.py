"""The coded exchange of a reconciliation session (core/reconcile.py rule 7), for differences
spread thinly over many items, where range descent pays a range digest (~15 bytes) per range
at every level down to one difference per range.

Flow, over the coded cells of core/coded_cells.py and the difference of two sides' cells
(core/coded_difference.py); A is the side that answers the peer's first split of the whole
key space, B the peer:
1. A receives FINGERPRINT entries that split the whole key space, at least SPLIT_RANGES_MIN of
   them, of which at least SPREAD_PERCENT percent differ and none has an empty side: the
   differences are spread, not clustered in a few ranges as the newest writes are (those
   stay with range descent, which lists them at ~4 bytes each). If A holds at least
   `reconcile.coded_items_min` items, it answers with one ESTIMATE entry: its estimator and
   the size of its coded table.
2. B estimates the number of differences and answers with CODED: its table at
   CELLS_PER_DIFFERENCE cells per estimated difference, no larger than either side's table or
   one message. If the estimate is beyond that, B splits the whole space (range descent).
3. A subtracts its own table of that size and peels. Decoded: A pushes its items B lacks
   (found by coded id) and asks for B's with CODED_WANT (a SKIP if there are none). Not
   decoded: A asks for MORE cells (GROWTH times as many; B sends only the split cells) while
   both tables and a message allow it, else A splits the whole space.
4. B answers MORE with the split cells, and CODED_WANT with the wanted records and a SKIP.
5. A side that cannot find an id it decoded, or looks at more than LOOKUP_ITEMS_MAX items
   to find the ids of one turn, splits the whole space instead (with the records it found):
   a difference is never dropped, since under every coded entry all range-descent answers
   are allowed.

Bounds: cells sent in a session are at most SUBTABLES x the sender's table size (and each
message fits `message_bytes_max`); ids asked for are at most one per cell sent; peeling
peels at most one item per cell; the peer's cells are kept as the bytes received.
"""

from __future__ import annotations

import itertools
import math

from .coded_cells import CELL_BYTES, SUBTABLES
from .coded_difference import decode_cells, encode_cells, estimate, peel, split_into
from .errors import RemoteProtocolError
from .reconcile_messages import (
    CODED,
    CODED_WANT,
    ESTIMATE,
    FINGERPRINT,
    FINGERPRINT_MASK,
    MESSAGE_OVERHEAD_BYTES,
    MORE,
    SKIP,
    Entry,
)

__all__ = ["CodedAnswers"]

# A split of the whole space with fewer ranges than this says too little about how the
# differences are spread (the default branching is 16).
SPLIT_RANGES_MIN = 8
# Percent of those ranges that must differ: 75% of 16 ranges differ when about 20 or more
# differences are spread at random, while the newest writes leave one or two ranges.
SPREAD_PERCENT = 75
# Cells per estimated difference, plus a few: peeling four sub-tables needs ~1.3 cells per
# difference for large counts (1.4 to decode nearly always at a few hundred), more for small
# ones, and the estimate is off by 8% (one standard deviation): 1.65 covers one 15% low.
CELLS_PER_DIFFERENCE = 1.65
CELLS_EXTRA = 16
# A table that did not decode grows by this factor (only the new cells travel).
GROWTH = 1.5
# Items looked at to find the coded ids of one turn: ids of one wall_ms are looked at one by
# one, so a bulk of records written in one millisecond is found by range descent instead.
LOOKUP_ITEMS_MAX = 1 << 16
# Bytes of a CODED entry's own fields (head, two varints) when fitting cells in a message.
_CODED_HEAD_BYTES = 8


class CodedAnswers:
    """The coded turns of `ReconcileSession` (its base class). Uses the session's `_digest`,
    `_config`, `_open`, `_incoming`, `_emit`, `_split` and `_coded_received`."""

    def _spread(self) -> bool:
        """Answer the incoming split of the whole space with an estimate (rule 1)?"""
        digest, entries = self._digest, self._incoming
        if digest.count < self._config.coded_items_min or len(entries) < SPLIT_RANGES_MIN:
            return False
        if not self._whole_open_is(FINGERPRINT):
            return False
        differing = 0
        for lo, entry in entries:
            if entry.mode != FINGERPRINT:
                return False
            ours, count = digest.fingerprint(lo, entry.hi)
            if ours & FINGERPRINT_MASK == entry.fingerprint and count == entry.count:
                continue
            if count == 0 or entry.count == 0:
                return False
            differing += 1
        return 100 * differing >= SPREAD_PERCENT * len(entries)

    def _estimate_entry(self) -> Entry:
        coded = self._digest.coded
        return Entry(None, ESTIMATE, size=coded.size.bit_length() - 1, data=coded.estimator())

    def _answer_coded(self, entry: Entry, out: list, opened: list, pushes: list) -> None:
        if entry.mode == ESTIMATE:
            self._answer_estimate(entry, out, opened)
        elif entry.mode == CODED:
            self._answer_cells(entry, out, opened, pushes)
        elif entry.mode == MORE:
            parent = self._coded_parent(CODED)
            coded = self._digest.coded
            if entry.size <= parent.size:
                raise RemoteProtocolError("asked for fewer coded cells than were sent")
            if entry.size > coded.size or entry.size - parent.size > self._cells_fit():
                self._split(b"", None, out, opened)
                return
            cells = encode_cells(coded.split_cells(parent.size, entry.size))
            self._emit(out, opened, b"", Entry(None, CODED, start=parent.size, size=entry.size,
                                               data=cells))  # fmt: skip
        else:
            parent = self._coded_parent(CODED)
            if len(entry.coded_ids) > SUBTABLES * parent.size:
                raise RemoteProtocolError("more coded ids asked for than cells were sent")
            ids = [(coded_id >> 32, coded_id & 0xFFFFFFFF) for coded_id in entry.coded_ids]
            keys, complete = self._lookup(ids)
            pushes.extend(key for key in keys if key is not None)
            if complete:
                self._emit(out, opened, b"", Entry(None, SKIP))
            else:
                self._split(b"", None, out, opened)

    def _answer_estimate(self, entry: Entry, out: list, opened: list) -> None:
        if not self._whole_open_is(FINGERPRINT, tiled=True):
            raise RemoteProtocolError("an estimate for ranges we did not open")
        coded = self._digest.coded
        differences = estimate(coded.estimator(), entry.data)
        if differences is not None:
            cells = math.ceil((differences * CELLS_PER_DIFFERENCE + CELLS_EXTRA) / SUBTABLES)
            if cells <= min(coded.size, 1 << entry.size, self._cells_fit()):
                data = encode_cells(coded.table(cells))
                self._emit(out, opened, b"", Entry(None, CODED, start=0, size=cells, data=data))
                return
        self._split(b"", None, out, opened)

    def _answer_cells(self, entry: Entry, out: list, opened: list, pushes: list) -> None:
        parent = self._coded_parent(ESTIMATE, MORE)
        coded = self._digest.coded
        held = self._coded_received[-1][1] if self._coded_received else 0
        if parent.mode == ESTIMATE:
            if entry.start != 0 or entry.size > coded.size:
                raise RemoteProtocolError("coded cells beyond our table")
            self._coded_received = []
        elif entry.start != held or entry.size > parent.size:
            raise RemoteProtocolError("coded cells other than those asked for")
        self._coded_received.append((entry.start, entry.size, entry.data))
        theirs = decode_cells(self._coded_received[0][2], self._coded_received[0][1])
        for start, size, data in self._coded_received[1:]:
            split_into(theirs, start, decode_cells(data, size - start))
        decoded = peel(theirs, coded.table(entry.size))
        if decoded is None:
            grown = min(coded.size, entry.size + self._cells_fit(),
                        max(entry.size + 1, math.ceil(entry.size * GROWTH)))  # fmt: skip
            if grown > entry.size:
                self._emit(out, opened, b"", Entry(None, MORE, size=grown))
                return
            self._coded_received = []
            self._split(b"", None, out, opened)
            return
        self._coded_received = []
        theirs_only, ours_only = decoded
        keys, complete = self._lookup(ours_only)
        if not complete or None in keys:
            self._split(b"", None, out, opened)  # not ours after all: find it by descent
            return
        pushes.extend(keys)
        if theirs_only:
            wanted = tuple(wall << 32 | tag for wall, tag in theirs_only)
            self._emit(out, opened, b"", Entry(None, CODED_WANT, coded_ids=wanted))
        else:
            self._emit(out, opened, b"", Entry(None, SKIP))

    def _lookup(self, ids: list[tuple[int, int]]) -> tuple[list[bytes | None], bool]:
        """(the sort key of each coded id, None where we hold none; whether every id was
        looked for within LOOKUP_ITEMS_MAX items)."""
        keys: list[bytes | None] = []
        budget = LOOKUP_ITEMS_MAX
        for wall, tag in ids:
            key, looked = self._digest.find_coded(wall, tag, budget)
            budget -= looked
            if key is None and budget <= 0:
                return keys, False
            keys.append(key)
        return keys, True

    def _cells_fit(self) -> int:
        """Cells per sub-table that one CODED entry may carry in one message."""
        room = self._config.message_bytes_max - MESSAGE_OVERHEAD_BYTES - _CODED_HEAD_BYTES
        return max(0, room // (SUBTABLES * CELL_BYTES))

    def _whole_open_is(self, *modes: int, tiled: bool = False) -> bool:
        """Do the ranges we left open cover the whole key space, all in `modes` (one range
        unless `tiled`)?"""
        opened = self._open
        if not opened or (len(opened) > 1 and not tiled) or opened[0].lo != b"":
            return False
        if opened[-1].hi is not None or any(item.mode not in modes for item in opened):
            return False
        return all(before.hi == after.lo for before, after in itertools.pairwise(opened))

    def _coded_parent(self, *modes: int):
        if not self._whole_open_is(*modes):
            raise RemoteProtocolError("a coded entry that answers nothing we asked")
        return self._open[0]
