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
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import RemoteProtocolError

__all__ = [
    "END",
    "FINGERPRINT",
    "FINGERPRINT_BYTES",
    "FINGERPRINT_MASK",
    "ID_BYTES",
    "ITEMS",
    "SKIP",
    "WANT",
    "Entry",
    "encode_entry",
    "parse_entries",
]

SKIP, FINGERPRINT, ITEMS, WANT = 0, 1, 2, 3
END = 0x80
# Interior range digests on the wire: the low 64 bits of the 128-bit range sum. A false match
# hides a difference with probability 2**-64 per comparison.
FINGERPRINT_BYTES = 8
FINGERPRINT_BITS = 8 * FINGERPRINT_BYTES
FINGERPRINT_MASK = (1 << FINGERPRINT_BITS) - 1
# Item ids are BLAKE2b keyed by the session's salt, so two items that collide in one session
# (probability about items_max**2 / 2**33 per listed range) differ in the next one.
ID_BYTES = 4
# Varints of at most 6 bytes (42 bits) hold every count and length we send.
VARINT_BYTES_MAX = 6


@dataclass(frozen=True, slots=True)
class Entry:
    """One decoded range entry: [previous hi, hi), hi None for the open end."""

    hi: bytes | None
    mode: int
    fingerprint: int = 0
    count: int = 0
    ids: tuple[bytes, ...] = ()


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
        if mode not in (SKIP, FINGERPRINT, ITEMS, WANT):
            raise RemoteProtocolError(f"unknown range mode {mode}")
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
