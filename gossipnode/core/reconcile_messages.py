"""Reconciliation messages, the compact range list they carry, and their exact sizes.

Rules:
1. Three messages, all frozen dataclasses: `ReconcileOpen` (the initiator's first message,
   turn 0), `ReconcileTurn` (every later message; one *turn* is one or more messages of one
   side, the last with `more=False`), `ReconcileAbort` (the sender gave the session up).
2. A turn's `ranges` bytes, concatenated over the turn's messages, list contiguous ranges of
   sort keys that cover the whole key space: the first starts at the lowest key (b""), each
   next one starts where the previous ended, the last is open-ended. The entries are packed
   as core/reconcile_ranges.py says (its names are re-exported here): a byte or two per
   range where a generic encoding would cost several, and `parse_entries` checks it strictly.
   `TurnWriter` cuts one turn into messages under the size limit.
3. `message_size` is the exact length of the canonical CBOR encoding of `render(message)`,
   the plain-tuple form (a test holds the two together). The core cannot import the CBOR
   codec, so both sides compute sizes with this function and check limits with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .merkle import WALL_BYTES
from .reconcile_ranges import (
    CODED,
    CODED_MODES,
    CODED_WANT,
    END,
    ESTIMATE,
    FINGERPRINT,
    FINGERPRINT_MASK,
    ID_BYTES,
    ITEMS,
    MORE,
    SKIP,
    WANT,
    Entry,
    encode_entry,
    parse_entries,
)
from .records import Record

__all__ = [
    "CODED",
    "CODED_MODES",
    "CODED_WANT",
    "END",
    "ESTIMATE",
    "FETCH_BATCH",
    "FINGERPRINT",
    "FINGERPRINT_MASK",
    "ID_BYTES",
    "ITEMS",
    "MESSAGE_OVERHEAD_BYTES",
    "MORE",
    "REASON_CHARS_MAX",
    "ROOT_BYTES",
    "SALT_BYTES",
    "SKIP",
    "WANT",
    "Entry",
    "FetchMany",
    "ReconcileAbort",
    "ReconcileMessage",
    "ReconcileOpen",
    "ReconcileTurn",
    "TurnWriter",
    "encode_entry",
    "message_size",
    "parse_entries",
    "record_size",
    "render",
]

SALT_BYTES = 8
ROOT_BYTES = 16
# The longest abort reason we keep; longer ones are cut, never refused.
REASON_CHARS_MAX = 200

# Headroom for a message's own fields (tag, session, turn, flags, length heads) when packing.
MESSAGE_OVERHEAD_BYTES = 40
# Pushed records a TurnWriter reads from the store at once (`fetch_many`): one query instead
# of one per record; a message of 1 KiB records carries hundreds, so at most this many reads
# are wasted per message, at its end.
FETCH_BATCH = 32

# Reads the current records of several keys at once: those found, by key.
FetchMany = Callable[[list[str]], dict[str, Record]]

_TAG_OPEN, _TAG_TURN, _TAG_ABORT = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ReconcileOpen:
    """Turn 0: the initiator's whole-scope root (sum and count) and the session's salt."""

    session: int
    dataset: str
    salt: bytes
    root: bytes
    count: int


@dataclass(frozen=True, slots=True)
class ReconcileTurn:
    """One message of a turn: range entries (see the module docstring) and pushed records."""

    session: int
    turn: int
    more: bool
    ranges: bytes
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class ReconcileAbort:
    """The sender abandoned the session (a protocol error or a stall); nothing is undone."""

    session: int
    reason: str


ReconcileMessage = ReconcileOpen | ReconcileTurn | ReconcileAbort


class TurnWriter:
    """Cuts one turn (its range entries, then its pushed records) into ReconcileTurn messages
    of at most `message_bytes_max` bytes each (a record larger than that travels alone).

    Records are read through `fetch(key)` (or `fetch_many(keys)`, FETCH_BATCH at a time) only
    when the message carrying them is built, so a
    streamed copy of a whole scope never sits in memory; a key gone since is skipped, and with
    `skip_replaced` a key whose version changed since it was chosen too."""

    def __init__(
        self,
        session: int,
        turn: int,
        entries: list[Entry],
        pushes: list[bytes],
        fetch: Callable[[str], Record | None],
        message_bytes_max: int,
        *,
        skip_replaced: bool = False,
        fetch_many: FetchMany | None = None,
    ) -> None:
        self.session = session
        self.turn = turn
        # A turn that leaves nothing open is its side's last.
        self.final = all(entry.mode == SKIP for entry in entries)
        self._entries = entries[::-1]  # popped from the end, in order
        self._pushes = pushes[::-1]
        self._fetch = fetch
        self._message_bytes_max = message_bytes_max
        self._skip_replaced = skip_replaced
        self._fetch_many = fetch_many

    @property
    def pending(self) -> bool:
        return bool(self._entries or self._pushes)

    def next_message(self) -> ReconcileTurn:
        budget = self._message_bytes_max - MESSAGE_OVERHEAD_BYTES
        chunks: list[bytes] = []
        previous = b""
        used = 0
        while self._entries:
            data = encode_entry(previous, self._entries[-1])
            if chunks and used + len(data) > budget:
                break
            chunks.append(data)
            used += len(data)
            previous = self._entries.pop().hi or previous
        records: list[Record] = []
        asked: set[str] = set()  # keys read at once (`fetch_many`), and what was found
        found: dict[str, Record] = {}
        while self._pushes and not self._entries:
            item = self._pushes[-1]
            key = item[WALL_BYTES:].decode()
            if self._fetch_many is None:
                record = self._fetch(key)
            else:
                if key not in asked:
                    asked = {p[WALL_BYTES:].decode() for p in self._pushes[-FETCH_BATCH:]}
                    found = self._fetch_many(sorted(asked))
                record = found.get(key)
            if record is None or (self._skip_replaced and record.version.wall_ms
                                  != int.from_bytes(item[:WALL_BYTES], "big")):
                self._pushes.pop()  # gone since, or replaced (reconcile.py rule 8)
                continue
            size = record_size(record)
            if (records or chunks) and used + size > budget:
                break
            records.append(record)
            used += size
            self._pushes.pop()
        message = ReconcileTurn(self.session, self.turn, self.pending, b"".join(chunks),
                                tuple(records))  # fmt: skip
        assert len(records) == 1 or message_size(message) <= self._message_bytes_max
        return message


# -- exact encoded sizes ---------------------------------------------------------------------


def _head(value: int) -> int:
    """Bytes of a CBOR head carrying `value` (an unsigned integer or a length)."""
    if value < 24:
        return 1
    if value < 1 << 8:
        return 2
    if value < 1 << 16:
        return 3
    if value < 1 << 32:
        return 5
    return 9


def _text(text: str) -> int:
    size = len(text.encode())
    return _head(size) + size


def _bytes(data: bytes) -> int:
    return _head(len(data)) + len(data)


def record_size(record: Record) -> int:
    """Encoded bytes of one record: [dataset, key, value or null, [wall_ms, counter, origin],
    signature or null]."""
    version = record.version
    return (
        1
        + _text(record.dataset)
        + _text(record.key)
        + (1 if record.value is None else _bytes(record.value))
        + 1
        + _head(version.wall_ms)
        + _head(version.counter)
        + _bytes(version.origin)
        + (1 if record.signature is None else _bytes(record.signature))
    )


def turn_size(session: int, turn: int, ranges_bytes: int, records: int, record_bytes: int) -> int:
    """Encoded bytes of a ReconcileTurn from its parts' sizes (see `render`)."""
    return (
        1
        + 1
        + _head(session)
        + _head(turn)
        + 1
        + _head(ranges_bytes)
        + ranges_bytes
        + _head(records)
        + record_bytes
    )


def message_size(message: ReconcileMessage) -> int:
    """The exact length of `wire.cbor.encode(render(message))`."""
    if isinstance(message, ReconcileOpen):
        return (
            1
            + 1
            + _head(message.session)
            + _text(message.dataset)
            + _bytes(message.salt)
            + _bytes(message.root)
            + _head(message.count)
        )
    if isinstance(message, ReconcileTurn):
        record_bytes = sum(record_size(record) for record in message.records)
        return turn_size(
            message.session, message.turn, len(message.ranges), len(message.records), record_bytes
        )
    return 1 + 1 + _head(message.session) + _text(message.reason)


def render(message: ReconcileMessage) -> list[object]:
    """The plain-tuple (CBOR array) form whose size `message_size` gives."""
    if isinstance(message, ReconcileOpen):
        return [_TAG_OPEN, message.session, message.dataset, message.salt, message.root,
                message.count]  # fmt: skip
    if isinstance(message, ReconcileTurn):
        records = [
            [r.dataset, r.key, r.value, [r.version.wall_ms, r.version.counter, r.version.origin],
             r.signature]
            for r in message.records
        ]
        return [_TAG_TURN, message.session, message.turn, message.more, message.ranges, records]
    return [_TAG_ABORT, message.session, message.reason]
