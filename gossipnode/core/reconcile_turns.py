"""The turns of a reconciliation session (core/reconcile.py rules 2, 3 and 7): how a side
answers the ranges the peer's turn covers, keeps the ranges it leaves open in its own, and
queues that turn for sending. `ReconcileSession` inherits them and holds the state they use.

Every range of the peer's turn must lie inside a range we left open, with a mode that answers
it: a FINGERPRINT or ITEMS under any range-descent or coded range of ours (so either side can
fall back to descent under a coded entry), a WANT only under the very ITEMS range it answers,
naming only ids we listed there. A coded entry is alone in its turn. Anything else raises
RemoteProtocolError (rule 6), and no turn is numbered above 2 * rounds_max.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from .errors import RemoteProtocolError
from .reconcile_messages import (
    CODED,
    CODED_MODES,
    CODED_WANT,
    ESTIMATE,
    FINGERPRINT,
    ITEMS,
    MORE,
    SKIP,
    Entry,
    TurnWriter,
)

__all__ = ["DESCENT_OPEN", "OpenRange", "TurnAnswers"]

# Modes of a range we left open that a range-descent answer (FINGERPRINT, ITEMS) may answer.
DESCENT_OPEN = (FINGERPRINT, ESTIMATE, CODED, MORE, CODED_WANT)


@dataclass(slots=True)
class OpenRange:
    """A range we left open in our last turn, awaiting the peer's answer."""

    lo: bytes
    hi: bytes | None
    mode: int
    ids: dict[bytes, bytes] = field(default_factory=dict)  # ITEMS: id -> sort key
    size: int = 0  # CODED: cells per sub-table sent; MORE: asked for


class TurnAnswers:
    """Answering a turn, for `ReconcileSession` (its base class). Uses the session's
    `_config`, `_incoming`, `_open`, `_open_los`, `_writer`, `_fetch`, `_fetch_many`,
    `_skip_replaced`, and the answers of `DescentAnswers` and `CodedAnswers`."""

    def _answer(self, turn: int) -> None:
        if turn > 2 * self._config.rounds_max:
            raise RemoteProtocolError(f"session still open after {self._config.rounds_max} rounds")
        out: list[Entry] = []
        opened: list[OpenRange] = []
        pushes: list[bytes] = []
        if any(entry.mode in CODED_MODES for _, entry in self._incoming):
            if len(self._incoming) != 1:
                raise RemoteProtocolError("a coded entry must be alone in its turn")
            self._answer_coded(self._incoming[0][1], out, opened, pushes)
            self._incoming = []
        elif self._spread():
            self._emit(out, opened, b"", self._estimate_entry())
            self._incoming = []
        for lo, entry in self._incoming:
            hi = entry.hi
            if entry.mode == SKIP:
                self._emit(out, opened, lo, Entry(hi, SKIP))
                continue
            parent = self._parent(lo, hi)
            if entry.mode == FINGERPRINT:
                if parent.mode not in DESCENT_OPEN:
                    raise RemoteProtocolError("a fingerprint for a range we did not open")
                self._answer_fingerprint(lo, entry, out, opened, pushes)
            elif entry.mode == ITEMS:
                if parent.mode not in DESCENT_OPEN:
                    raise RemoteProtocolError("item ids for a range we did not open")
                self._answer_items(lo, entry, out, opened, pushes)
            else:
                if parent.mode != ITEMS or parent.lo != lo or parent.hi != hi:
                    raise RemoteProtocolError("a want for a range we did not list")
                for item_id in dict.fromkeys(entry.ids):  # in order, once each
                    if item_id not in parent.ids:
                        raise RemoteProtocolError("a want for an item we did not list")
                    pushes.append(parent.ids[item_id])
                self._emit(out, opened, lo, Entry(hi, SKIP))
        self._incoming, self._incoming_lo = [], b""
        self._set_open(opened)
        self._queue_turn(turn, out, pushes)

    @staticmethod
    def _emit(out: list[Entry], opened: list[OpenRange], lo: bytes, entry: Entry,
              ids: dict[bytes, bytes] | None = None) -> None:  # fmt: skip
        if entry.mode == SKIP and out and out[-1].mode == SKIP:
            out[-1] = entry  # adjacent skips merge into one range
            return
        out.append(entry)
        if entry.mode != SKIP:
            opened.append(OpenRange(lo, entry.hi, entry.mode, ids or {}, entry.size))

    def _set_open(self, opened: list[OpenRange]) -> None:
        self._open = opened
        self._open_los = [entry.lo for entry in opened]

    def _parent(self, lo: bytes, hi: bytes | None) -> OpenRange:
        """The range we left open that contains [lo, hi), or RemoteProtocolError."""
        index = bisect_right(self._open_los, lo) - 1
        if index >= 0:
            parent = self._open[index]
            if parent.hi is None or (hi is not None and hi <= parent.hi):
                return parent
        raise RemoteProtocolError("a range that lies outside every range we left open")

    def _queue_turn(self, turn: int, entries: list[Entry], pushes: list[bytes]) -> None:
        if turn > 2 * self._config.rounds_max:
            raise RemoteProtocolError(f"session still open after {self._config.rounds_max} rounds")
        self._writer = TurnWriter(
            self.session, turn, entries, pushes, self._fetch, self._config.message_bytes_max,
            skip_replaced=self._skip_replaced, fetch_many=self._fetch_many,
        )
