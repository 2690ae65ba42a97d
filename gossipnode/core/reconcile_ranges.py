"""The packed range list a reconciliation turn carries (rule 2 of
core/reconcile_messages.py): contiguous ranges of sort keys, each with a mode and its
payload, coded a byte or two per range and parsed strictly.

Each entry is

    head        1 byte: mode (SKIP, FINGERPRINT, ITEMS, WANT) | END (0x80, no bound)
    bound       unless END: varint shared, varint suffix length, suffix; the upper bound
                is the previous bound *in the same message* cut to `shared` bytes plus
                the suffix (bounds are the shortest separators, so suffixes are short)
    payload     FINGERPRINT: 8-byte low half of the range sum, varint count
                ITEMS, WANT: varint n, then n salted item ids of ID_BYTES each
                ESTIMATE: varint log2 of the sender's table size, the ESTIMATE_BYTES estimator
                CODED: varint start, varint size, then SUBTABLES x (size - start) cells of
                    CELL_BYTES: the split cells from start to size, or the table if start is 0
                MORE: varint size (the table size asked for)
                CODED_WANT: varint n, then n coded ids in increasing order, each a varint wall
                    delta from the previous id's wall and the 4-byte tag

The coded modes (core/coded_cells.py, core/reconcile_coded.py) cover the whole key space: their
entry has no bound (END).
"""

from __future__ import annotations

from dataclasses import dataclass

from .coded_cells import CELL_BYTES, ESTIMATE_BYTES, INDEX_BITS, SUBTABLES, TABLE_CELLS_MAX
from .errors import RemoteProtocolError

__all__ = [
    "CODED",
    "CODED_MODES",
    "CODED_WANT",
    "END",
    "ESTIMATE",
    "FINGERPRINT",
    "FINGERPRINT_BYTES",
    "FINGERPRINT_MASK",
    "ID_BYTES",
    "ITEMS",
    "MORE",
    "SKIP",
    "WANT",
    "Entry",
    "encode_entry",
    "parse_entries",
]

SKIP, FINGERPRINT, ITEMS, WANT = 0, 1, 2, 3
ESTIMATE, CODED, MORE, CODED_WANT = 4, 5, 6, 7
CODED_MODES = (ESTIMATE, CODED, MORE, CODED_WANT)
END = 0x80
_WALL_LIMIT = 1 << 48
_TAG_BYTES = 4
# Interior range digests on the wire: the low 64 bits of the 128-bit range sum. A false match
# hides a difference with probability 2**-64 per comparison.
FINGERPRINT_BYTES = 8
FINGERPRINT_BITS = 8 * FINGERPRINT_BYTES
FINGERPRINT_MASK = (1 << FINGERPRINT_BITS) - 1
# Item ids are BLAKE2b keyed by the session's salt, so two items that collide in one session
# (probability about items_max**2 / 2**33 per listed range) differ in the next one.
ID_BYTES = 4
# Varints of at most 7 bytes (49 bits) hold every count, length and wall_ms we send.
VARINT_BYTES_MAX = 7


@dataclass(frozen=True, slots=True)
class Entry:
    """One decoded range entry: [previous hi, hi), hi None for the open end."""

    hi: bytes | None
    mode: int
    fingerprint: int = 0
    count: int = 0
    ids: tuple[bytes, ...] = ()
    # The coded modes: table sizes (ESTIMATE: log2 of it), cells or estimator bytes, and
    # coded ids as wall << 32 | tag.
    start: int = 0
    size: int = 0
    data: bytes = b""
    coded_ids: tuple[int, ...] = ()


def _varint(value: int) -> bytes:
    assert 0 <= value < 1 << (7 * VARINT_BYTES_MAX)
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_entry(previous: bytes, entry: Entry) -> bytes:
    """One entry, its bound delta-coded against `previous` (the last bound of its message)."""
    parts = [bytes([entry.mode | (END if entry.hi is None else 0)])]
    if entry.hi is not None:
        shared = 0
        limit = min(len(previous), len(entry.hi))
        while shared < limit and previous[shared] == entry.hi[shared]:
            shared += 1
        suffix = entry.hi[shared:]
        parts += [_varint(shared), _varint(len(suffix)), suffix]
    if entry.mode == FINGERPRINT:
        parts += [entry.fingerprint.to_bytes(FINGERPRINT_BYTES, "big"), _varint(entry.count)]
    elif entry.mode in (ITEMS, WANT):
        parts += [_varint(len(entry.ids)), *entry.ids]
    elif entry.mode == ESTIMATE:
        parts += [_varint(entry.size), entry.data]
    elif entry.mode == CODED:
        parts += [_varint(entry.start), _varint(entry.size), entry.data]
    elif entry.mode == MORE:
        parts.append(_varint(entry.size))
    elif entry.mode == CODED_WANT:
        parts.append(_varint(len(entry.coded_ids)))
        wall = 0
        for coded_id in entry.coded_ids:
            parts += [_varint((coded_id >> 32) - wall), (coded_id & 0xFFFFFFFF).to_bytes(4, "big")]
            wall = coded_id >> 32
    return b"".join(parts)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise RemoteProtocolError("range list ends in the middle of an entry")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def varint(self) -> int:
        value = 0
        for index in range(VARINT_BYTES_MAX):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                if byte == 0 and index > 0:
                    raise RemoteProtocolError("range list has a non-minimal varint")
                return value
        raise RemoteProtocolError("range list has an over-long varint")


def parse_entries(data: bytes, bound_bytes_max: int, ids_max: int) -> list[Entry]:
    """Decode one message's range entries.

    Raises RemoteProtocolError for anything malformed: unknown modes, bounds longer than
    `bound_bytes_max` or not strictly increasing, more than `ids_max` ids in an entry,
    entries after the open-ended one, trailing bytes."""
    reader = _Reader(data)
    entries: list[Entry] = []
    previous = b""
    while reader.offset < len(data):
        if entries and entries[-1].hi is None:
            raise RemoteProtocolError("range entry after the open-ended one")
        head = reader.take(1)[0]
        mode = head & ~END
        if mode not in (SKIP, FINGERPRINT, ITEMS, WANT, *CODED_MODES):
            raise RemoteProtocolError(f"unknown range mode {mode}")
        if mode in CODED_MODES:
            if not head & END:
                raise RemoteProtocolError("a coded entry must cover the key space to its end")
            entries.append(_parse_coded(reader, mode))
            continue
        hi: bytes | None = None
        if not head & END:
            shared = reader.varint()
            suffix_size = reader.varint()
            if shared > len(previous) or shared + suffix_size > bound_bytes_max:
                raise RemoteProtocolError("range bound out of bounds")
            hi = previous[:shared] + reader.take(suffix_size)
            if not hi or (entries and entries[-1].hi is not None and hi <= entries[-1].hi):
                raise RemoteProtocolError("range bounds must strictly increase")
            previous = hi
        if mode == FINGERPRINT:
            fingerprint = int.from_bytes(reader.take(FINGERPRINT_BYTES), "big")
            entries.append(Entry(hi, mode, fingerprint=fingerprint, count=reader.varint()))
        elif mode in (ITEMS, WANT):
            size = reader.varint()
            if size > ids_max:
                raise RemoteProtocolError(f"{size} item ids in one range, over {ids_max}")
            ids = tuple(reader.take(ID_BYTES) for _ in range(size))
            entries.append(Entry(hi, mode, ids=ids))
        else:
            entries.append(Entry(hi, mode))
    return entries


def _parse_coded(reader: _Reader, mode: int) -> Entry:
    if mode == ESTIMATE:
        exponent = reader.varint()
        if exponent > INDEX_BITS:
            raise RemoteProtocolError("coded table size out of bounds")
        return Entry(None, mode, size=exponent, data=reader.take(ESTIMATE_BYTES))
    if mode == CODED:
        start, size = reader.varint(), reader.varint()
        if not start < size <= TABLE_CELLS_MAX:
            raise RemoteProtocolError("coded cells out of bounds")
        data = reader.take(SUBTABLES * (size - start) * CELL_BYTES)
        return Entry(None, mode, start=start, size=size, data=data)
    if mode == MORE:
        size = reader.varint()
        if not 1 < size <= TABLE_CELLS_MAX:
            raise RemoteProtocolError("coded table size out of bounds")
        return Entry(None, mode, size=size)
    count = reader.varint()
    if count > SUBTABLES * TABLE_CELLS_MAX:
        raise RemoteProtocolError(f"{count} coded ids, over one per cell")
    ids: list[int] = []
    wall = 0
    for _ in range(count):
        wall += reader.varint()
        coded_id = wall << 32 | int.from_bytes(reader.take(_TAG_BYTES), "big")
        if wall >= _WALL_LIMIT or (ids and coded_id <= ids[-1]):
            raise RemoteProtocolError("coded ids out of bounds or not increasing")
        ids.append(coded_id)
    return Entry(None, mode, coded_ids=tuple(ids))
