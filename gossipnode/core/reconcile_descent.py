"""The range-descent answers of a reconciliation session (core/reconcile.py rule 2): what
a side answers for a range the peer sent a FINGERPRINT or an ITEMS list of, and how it splits
a range. `ReconcileSession` inherits them and holds the state they use."""

from __future__ import annotations

import hashlib

from .errors import RemoteProtocolError
from .merkle import SUM_MASK
from .reconcile_messages import FINGERPRINT, FINGERPRINT_MASK, ID_BYTES, ITEMS, SKIP, WANT, Entry

__all__ = ["COUNT_MAX", "DescentAnswers"]

# Counts in a root or a range above this are not credible (2**40 is a trillion records).
COUNT_MAX = 1 << 40


class DescentAnswers:
    """Range descent for `ReconcileSession` (its base class). Uses the session's `_digest`,
    `_config`, `_salt` and `_emit`."""

    def _answer_fingerprint(self, lo: bytes, entry: Entry, out: list[Entry],
                            opened: list, pushes: list[bytes]) -> None:  # fmt: skip
        hi, config = entry.hi, self._config
        if entry.count > COUNT_MAX:
            raise RemoteProtocolError("range count out of bounds")
        ours, count = self._digest.fingerprint(lo, hi)
        if ours & FINGERPRINT_MASK == entry.fingerprint and count == entry.count:
            self._emit(out, opened, lo, Entry(hi, SKIP))
            return
        if entry.count == 0:
            pushes.extend(key for key, _ in self._digest.items(lo, hi))
            self._emit(out, opened, lo, Entry(hi, SKIP))
            return
        if count == entry.count + 1 and count <= config.pure_scan_items_max:
            lone = (ours - entry.fingerprint) & FINGERPRINT_MASK
            key = self._digest.find_leaf(lo, hi, lone)
            if key is not None:
                pushes.append(key)
                self._emit(out, opened, lo, Entry(hi, SKIP))
                return
        if count <= config.items_max:
            ids = self._ids(lo, hi)
            self._emit(out, opened, lo, Entry(hi, ITEMS, ids=tuple(ids)), ids)
        elif entry.count <= config.items_max or (
            entry.count == count + 1 and entry.count <= config.pure_scan_items_max
        ):
            self._emit(out, opened, lo, Entry(hi, FINGERPRINT, ours & FINGERPRINT_MASK, count))
        else:
            self._split(lo, hi, out, opened)

    def _split(self, lo: bytes, hi: bytes | None, out: list[Entry], opened: list) -> None:
        """Descend into [lo, hi): list our ids if few, else `branching` range digests."""
        config, digest = self._config, self._digest
        if digest.rank(hi) - (digest.rank(lo) if lo else 0) <= config.items_max:
            ids = self._ids(lo, hi)
            self._emit(out, opened, lo, Entry(hi, ITEMS, ids=tuple(ids)), ids)
            return
        child_lo = lo
        for child_hi in [*digest.split(lo, hi, config.branching), hi]:
            child_sum, child_count = digest.fingerprint(child_lo, child_hi)
            child = Entry(child_hi, FINGERPRINT, child_sum & FINGERPRINT_MASK, child_count)
            self._emit(out, opened, child_lo, child)
            child_lo = child_hi or b""

    def _answer_items(self, lo: bytes, entry: Entry, out: list[Entry],
                      opened: list, pushes: list[bytes]) -> None:  # fmt: skip
        theirs = set(entry.ids)
        if not theirs:
            pushes.extend(key for key, _ in self._digest.items(lo, entry.hi))
            self._emit(out, opened, lo, Entry(entry.hi, SKIP))
            return
        ours = self._ids(lo, entry.hi)
        pushes.extend(key for item_id, key in ours.items() if item_id not in theirs)
        wanted = tuple(item_id for item_id in entry.ids if item_id not in ours)
        if wanted:
            self._emit(out, opened, lo, Entry(entry.hi, WANT, ids=tuple(dict.fromkeys(wanted))))
        else:
            self._emit(out, opened, lo, Entry(entry.hi, SKIP))

    def _ids(self, lo: bytes, hi: bytes | None) -> dict[bytes, bytes]:
        """Salted item id -> sort key for our items in [lo, hi)."""
        ids: dict[bytes, bytes] = {}
        for key, leaf in self._digest.items(lo, hi):
            leaf_bytes = (leaf & SUM_MASK).to_bytes(16, "big")
            ids[hashlib.blake2b(leaf_bytes, digest_size=ID_BYTES, key=self._salt).digest()] = key
        return ids
