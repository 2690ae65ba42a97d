"""A message's declared structure, checked from its CBOR heads before cbor2 decodes it.

cbor2 decodes a whole message before the registry's checks see it: a 2.9 MB push-pull of
20,000 statements, five times the protocol's bound, cost 0.14 s of decoding to be refused
for its count. Here the heads alone (wire/cbor_heads.py) are read against the schema the
message's class declares, compiled once at registration from the same type hints as its
codec (wire/messages.py rules 1 to 4):

1. Every array the schema bounds (a `tuple[X, ...]`, a record batch) is refused when its
   declared count is over the bound, with the decoder's own reason, before any of its items
   is read; a fixed array (a dataclass, `tuple[A, B]`) must declare its exact count.
2. Scalars are checked by major type only (an int, a byte or text string, a bool, a float,
   null for `X | None`); a string is skipped by its declared length, never read.
3. A head of another type than the schema's is skipped, with everything under it, if that
   is at most MISMATCH_ITEMS_MAX items, and the walk goes on: the decoder refuses the
   message later with its precise reason. A larger one is refused at once.
4. Heads that cannot be read (truncated, indefinite, reserved) end the walk: the strict
   decoder (wire/cbor.py) refuses them with its reason.
5. The rows of a record batch, the bulk of a push or a reconciliation turn, are skipped
   only when something follows them (a record batch ends both messages): a batch is bounded
   by its count, and its rows by the record checks of wire/record_codec.py.
6. A message shorter than its class's `bytes_min` is not walked: it cannot declare more
   items than the smallest bound allows (every item takes a byte). Nor is one shorter than
   the registry's `walk_bytes_min` (WALK_BYTES_MIN): reading heads in Python costs about as
   much per item as cbor2's whole decoding, so the walk pays only where a refusal saves
   much; below it, refusing a message costs at most the decoding of that many bytes.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

from ..core.records import NODE_ID_BYTES, Record
from ..core.schema import Limit
from .cbor_heads import ARRAY, MAP, SIMPLE, HeadError, read_head, skip

__all__ = ["MISMATCH_ITEMS_MAX", "WALK_BYTES_MIN", "Declared", "Shape", "shape_of"]

# Items under a head of the wrong type that the walk skips to go on (rule 3): a scalar where
# a statement was due, a short list where a bytes field was due. A larger subtree would cost
# the walk work in proportion to the frame, so it is refused at its head.
MISMATCH_ITEMS_MAX = 64
# Messages shorter than this are not walked (rule 6). Reading every head of a valid
# message costs about as much again as decoding it (a full state of 1,000 members, 160 KB:
# 4.7 ms to decode, 5.5 ms more to walk). Below this are probes, most pushes, and full states
# of up to about 1,600 members (the simulator's 1,000-member runs exchange them); above it a
# push or a reconciliation turn costs a few heads (rule 5), a larger full state twice its
# decoding (3,000 members: 16 ms, 33 ms with the walk). Refusing a shorter message costs its
# decoding, at most about 8 ms; above it a refusal by heads saves up to 2,000 times that
# (scripts/bench_wire.py --codec).
WALK_BYTES_MIN = 256 * 1024
# Fields of one record batch row (wire/record_codec.py).
ROW_FIELDS = 8

_NULL = 0xF6
Error = Callable[[str], Exception]


def kind(data: bytes, pos: int) -> str:
    """The Python type name cbor2 would decode the item at `pos` to (the decoder's words)."""
    major, info, arg, _ = read_head(data, pos)
    if major in (0, 1):
        return "int"
    if major == SIMPLE:
        if info in (25, 26, 27):
            return "float"
        return {20: "bool", 21: "bool", 22: "null", 23: "UndefinedType"}.get(
            arg, "CBORSimpleValue")
    return {2: "bytes", 3: "str", ARRAY: "list", MAP: "dict"}.get(major, "CBORTag")


def limit_range(limit: Limit) -> str:
    """A limit as the decoder words it (messages.py `_range`)."""
    if limit.minimum == limit.maximum:
        return f"exactly {limit.maximum}"
    return f"{limit.minimum} to {limit.maximum}"


class Shape:
    """One field's declared structure. `walk(data, pos, rest)` returns the position after
    the item, or -1 once the caller needs nothing after it (`rest` false) and nothing more
    is checked; raises the registry's error (rules 1, 3) or HeadError (rule 4)."""

    where: str
    expected: str
    error: Error
    bytes_min: float = float("inf")  # the smallest message that can break this bound

    def walk(self, data: bytes, pos: int, rest: bool) -> int:
        raise NotImplementedError

    def mismatch(self, data: bytes, pos: int) -> int:
        """Rule 3: skip a small subtree of the wrong type, refuse a large one."""
        end = skip(data, pos, MISMATCH_ITEMS_MAX)
        if end is None:
            raise self.error(f"{self.where}: expected {self.expected}, got {kind(data, pos)}")
        return end


class Scalar(Shape):
    def __init__(self, where: str, expected: str, error: Error) -> None:
        self.where, self.expected, self.error = where, expected, error
        if expected == "int":
            self._accepts = lambda major, info: major == 0 or major == 1
        elif expected == "bytes":
            self._accepts = lambda major, info: major == 2
        elif expected == "str":
            self._accepts = lambda major, info: major == 3
        elif expected == "bool":
            self._accepts = lambda major, info: major == SIMPLE and info in (20, 21)
        else:  # float
            self._accepts = lambda major, info: major == SIMPLE and info in (25, 26, 27)

    def walk(self, data: bytes, pos: int, rest: bool) -> int:
        major, info, arg, after = read_head(data, pos)
        if not self._accepts(major, info):
            return self.mismatch(data, pos)
        if major == 2 or major == 3:
            after += arg
            if after > len(data):
                raise HeadError("premature end of data")
        return after


class Optional(Shape):
    def __init__(self, inner: Shape) -> None:
        self.inner = inner
        self.where, self.expected, self.error = inner.where, inner.expected, inner.error
        self.bytes_min = inner.bytes_min

    def walk(self, data: bytes, pos: int, rest: bool) -> int:
        if pos < len(data) and data[pos] == _NULL:
            return pos + 1
        return self.inner.walk(data, pos, rest)


class Fields(Shape):
    """A dataclass (`what` "fields") or a `tuple[A, B]` ("values"): an exact array."""

    def __init__(self, where: str, fields: list[Shape], error: Error, what: str) -> None:
        self.where, self.fields, self.error = where, fields, error
        self.count = len(fields)
        self.expected = f"an array of {self.count} {what}"
        self.bytes_min = min((f.bytes_min for f in fields), default=float("inf"))

    def walk(self, data: bytes, pos: int, rest: bool) -> int:
        major, _, arg, pos_ = read_head(data, pos)
        if major != ARRAY or arg != self.count:
            return self.mismatch(data, pos)
        last = self.count - 1
        for index, field in enumerate(self.fields):
            pos_ = field.walk(data, pos_, rest or index < last)
            if pos_ < 0:
                return -1
        return pos_


class Items(Shape):
    """`tuple[X, ...]` under a `Limit` (rule 1)."""

    def __init__(self, where: str, item: Shape, limit: Limit, error: Error) -> None:
        self.where, self.item, self.limit, self.error = where, item, limit, error
        self.expected = "an array"
        self.bytes_min = min(limit.maximum + 2, item.bytes_min)

    def walk(self, data: bytes, pos: int, rest: bool) -> int:
        major, _, count, pos_ = read_head(data, pos)
        if major != ARRAY:
            return self.mismatch(data, pos)
        if not self.limit.minimum <= count <= self.limit.maximum:
            raise self.error(f"{self.where}: {count} items, expected {limit_range(self.limit)}")
        item = self.item
        for _ in range(count):
            pos_ = item.walk(data, pos_, True)
        return pos_


class RecordBatch(Shape):
    """`tuple[Record, ...]`: `[origins, rows]` (wire/record_codec.py; rules 1 and 5)."""

    def __init__(self, where: str, items_max: int, error: Error) -> None:
        self.where, self.items_max, self.error = where, items_max, error
        self.expected = "[origins, records]"
        self.bytes_min = items_max + 2

    def walk(self, data: bytes, pos: int, rest: bool) -> int:
        major, _, arg, pos_ = read_head(data, pos)
        if major != ARRAY or arg != 2:
            return self.mismatch(data, pos)
        major, _, origins, pos_ = read_head(data, pos_)
        if major != ARRAY:
            return self.mismatch(data, pos)
        for _ in range(origins):
            major, _, arg, after = read_head(data, pos_)
            if major == 2:
                pos_ = after + arg
                if pos_ > len(data):
                    raise HeadError("premature end of data")
                continue
            pos_ = skip(data, pos_, MISMATCH_ITEMS_MAX)
            if pos_ is None:
                raise self.error(f"{self.where}.origins: expected {NODE_ID_BYTES} bytes each")
        major, _, rows, pos_ = read_head(data, pos_)
        if major != ARRAY:
            return self.mismatch(data, pos)
        if rows > self.items_max or origins > rows:
            raise self.error(f"{self.where}: {rows} records and {origins} origins")
        if not rest:
            return -1  # rule 5: nothing follows the rows
        for index in range(rows):
            major, _, arg, after = read_head(data, pos_)
            if major != ARRAY or arg != ROW_FIELDS:
                pos_ = skip(data, pos_, MISMATCH_ITEMS_MAX)
                if pos_ is None:
                    raise self.error(f"{self.where}[{index}]: expected an array of "
                                     f"{ROW_FIELDS} fields")
                continue
            pos_ = after
            for _ in range(ROW_FIELDS):
                pos_ = skip(data, pos_, MISMATCH_ITEMS_MAX)
                if pos_ is None:
                    raise self.error(f"{self.where}[{index}]: a field of more than "
                                     f"{MISMATCH_ITEMS_MAX} items")
        return pos_


class Declared:
    """The shapes of a registry's message classes, by type id."""

    def __init__(self, items_max: int, error: Error, walk_bytes_min: int) -> None:
        self._items_max, self._error = items_max, error
        self._shapes: dict[int, Fields] = {}
        self._walk_bytes_min = walk_bytes_min
        self._bytes_min = float("inf")  # no message shorter can break a bound (rule 6)

    def register(self, type_id: int, cls: type) -> None:
        shape = shape_of(cls, cls.__name__, items_max=self._items_max, error=self._error)
        self._shapes[type_id] = shape
        self._bytes_min = min(self._bytes_min, shape.bytes_min)

    def check(self, data: bytes) -> None:
        """Refuse `data`, one message `[type id, fields...]`, if its heads break its class's
        declared structure (rules 1 and 3); return if they do not, or cannot be read."""
        if len(data) < self._bytes_min or len(data) < self._walk_bytes_min:
            return  # rule 6
        try:
            self._walk(data)
        except HeadError:
            return  # rule 4: the strict decoder says why

    def _walk(self, data: bytes) -> None:
        error = self._error
        major, _, count, pos = read_head(data, 0)
        shape = None
        if major == ARRAY and count:
            id_major, _, type_id, pos = read_head(data, pos)
            shape = self._shapes.get(type_id) if id_major == 0 else None
        if shape is None or count != shape.count + 1:
            # Not a message of ours: small, the decoder says why; large, refused (rule 3).
            if skip(data, 0, MISMATCH_ITEMS_MAX) is None:
                raise error(self._envelope(data, shape, count))
            return
        if len(data) < shape.bytes_min:
            return  # rule 6
        last = shape.count - 1
        for index, field in enumerate(shape.fields):
            pos = field.walk(data, pos, index < last)
            if pos < 0:
                return


    @staticmethod
    def _envelope(data: bytes, shape: Fields | None, count: int) -> str:
        """Why the decoder would refuse a message that is not `[known type id, fields...]`
        (messages.py `MessageRegistry.decode`), in its words."""
        if read_head(data, 0)[0] != ARRAY or not count:
            return f"a message must be a non-empty array, got {kind(data, 0)}"
        if shape is not None:
            return f"{shape.where}: expected {shape.expected}, got {count - 1} fields"
        pos = read_head(data, 0)[3]
        major, _, arg, _ = read_head(data, pos)
        if major in (0, 1):
            return f"unknown message type id {arg if major == 0 else -1 - arg}"
        return f"message type id must be an integer, got {kind(data, pos)}"


def shape_of(hint: Any, where: str, *, items_max: int, error: Error,
             limit: Limit | None = None) -> Shape:
    """The shape of a field typed `hint` (one the registry compiled a codec for already)."""
    def of(inner: Any, at: str, bound: Limit | None = None) -> Shape:
        return shape_of(inner, at, items_max=items_max, error=error, limit=bound)

    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(hint)
        limits = [extra for extra in extras if isinstance(extra, Limit)]
        return of(base, where, limits[0] if limits else None)
    if origin in (typing.Union, types.UnionType):
        (option,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return Optional(of(option, where, limit))
    if origin is tuple:
        args = typing.get_args(hint)
        if args == (Record, Ellipsis):
            return RecordBatch(where, (limit or Limit(items_max)).maximum, error)
        if len(args) == 2 and args[1] is Ellipsis:
            return Items(where, of(args[0], f"{where}[]"), limit or Limit(items_max), error)
        return Fields(where, [of(arg, f"{where}[{i}]") for i, arg in enumerate(args)], error,
                      "values")
    if hint in (bool, int, float, str, bytes):
        return Scalar(where, hint.__name__, error)
    hints = typing.get_type_hints(hint, include_extras=True)
    return Fields(where, [of(hints[f.name], f"{where}.{f.name}")
                          for f in dataclasses.fields(hint) if f.init], error, "fields")
