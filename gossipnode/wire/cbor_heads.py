"""CBOR heads, read without decoding (RFC 8949 section 3), so that a message can be judged by
its declared structure before cbor2 decodes it (wire/declared.py).

Every data item starts with a head. The initial byte's top 3 bits are the major type: 0 an
unsigned integer, 1 a negative integer, 2 a byte string, 3 a text string, 4 an array, 5 a
map, 6 a tag, 7 a simple value or a float. Its low 5 bits, the additional information, give
the argument: below 24 the argument itself; 24, 25, 26, 27: the argument is in the next 1,
2, 4 or 8 bytes, big-endian; 28 to 30 are reserved; 31 is an indefinite length (or the
"break" that ends one). The argument is an integer's value (for major type 1, -1 - value),
a string's length in bytes, an array's item count, a map's pair count, a tag's number, a
simple value, or (additional information 25 to 27 under major type 7) a float's bits.

Rules:
1. Strict, as the codec is (wire/cbor.py): reserved additional information, an indefinite
   length, a head or a string that runs past the end of the data, and an array or map that
   declares more items than bytes remain (each item takes at least one) raise `HeadError`,
   a `CborError`. Nothing else is ever raised, whatever the bytes.
2. Cheap: reading a head costs O(1), skipping a string O(1), skipping an array or a map
   O(items in it), never O(bytes); `skip` takes a budget of items and gives up past it.
3. A head is not a value: a non-canonical head, invalid UTF-8 in a text string, a tag, a
   duplicate map key are the decoder's to refuse (wire/cbor.py), not this module's.
"""

from __future__ import annotations

from collections.abc import Callable

from .cbor import CborError

__all__ = ["HeadError", "heads", "read_head", "skip"]

ARRAY = 4
MAP = 5
TAG = 6
SIMPLE = 7


class HeadError(CborError):
    """Bytes whose heads cannot be read: truncated, indefinite, reserved (rule 1)."""


def read_head(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """(major type, additional information, argument, position after the head) of the item
    at `pos`. Raises HeadError if it is truncated, reserved or indefinite."""
    if pos >= len(data):
        raise HeadError("premature end of data")
    initial = data[pos]
    major, info = initial >> 5, initial & 31
    if info < 24:
        return major, info, info, pos + 1
    if info > 27:
        raise HeadError("indefinite length" if info == 31
                        else f"reserved additional information {info}")
    end = pos + 1 + (1 << (info - 24))
    if end > len(data):
        raise HeadError("premature end of data")
    return major, info, int.from_bytes(data[pos + 1:end], "big"), end


def skip(data: bytes, pos: int, items_max: int | None = None,
         visit: Callable[[int, int, int], object] | None = None) -> int | None:
    """The position after the item at `pos` and everything in it; None if it holds more
    than `items_max` items (itself included), found without reading further. `visit`, if
    given, is called with each head read, in order: (major type, additional information,
    argument). Raises HeadError (rule 1)."""
    end = len(data)
    pending = 1
    items = 0
    while pending:
        pending -= 1
        items += 1
        if items_max is not None and items > items_max:
            return None
        major, info, arg, pos = read_head(data, pos)
        if visit is not None:
            visit(major, info, arg)
        if major in (2, 3):
            pos += arg
            if pos > end:
                raise HeadError("premature end of data")
        elif major in (ARRAY, MAP):
            count = arg if major == ARRAY else 2 * arg
            if count > end - pos:
                raise HeadError(f"{count} items declared with {end - pos} bytes left")
            pending += count
        elif major == TAG:
            pending += 1
    return pos


def heads(data: bytes) -> list[tuple[int, int, int]]:
    """Every head of `data`, one item with nothing after it, in order: (major type,
    additional information, argument). Raises HeadError (rule 1), or for trailing bytes."""
    read: list[tuple[int, int, int]] = []
    end = skip(data, 0, visit=lambda *head: read.append(head))
    assert end is not None  # no budget of items given: skip never gives up
    if end != len(data):
        raise HeadError(f"{len(data) - end} trailing bytes")
    return read
