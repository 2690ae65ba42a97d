"""Peer messages <-> canonical CBOR, checked against each message class's type hints.

Theory of operation:
1. The core's messages are frozen dataclasses whose fields are typed with int, str, bytes,
   bool, float, `X | None`, `tuple[X, ...]`, Record, Version, or another such dataclass.
   A `MessageRegistry` maps each message class to a small stable integer type id and
   compiles, once at registration, an encoder and a decoder from those hints.
2. On the wire a message is the canonical CBOR array `[type_id, field_1, field_2, ...]` in
   field order; a nested dataclass (Record and Version included) is the array of its
   fields. Arrays rather than maps: smaller, and the exact length is part of the schema.
   Changing a registered class is a protocol change and needs a new protocol version. A
   batch of records (`tuple[Record, ...]`) has its own compact form (wire/record_codec.py).
3. Decoding trusts nothing: the declared structure first (wire/declared.py: an array over its
   bound is refused from the CBOR heads alone), strict CBOR next (wire/cbor.py: bounded depth,
   definite lengths, no duplicate keys, no tags, nothing trailing, canonical only), then every value
   is checked against its hint: exact types (a bool is not an int, an int is not a float),
   ints within CBOR's 64-bit range, finite floats, UTF-8 lengths of str, lengths of bytes,
   item counts of tuples, Version's ranges and its 32-byte origin. Any violation raises
   `MessageError` (a RemoteProtocolError) whose text names the field, e.g.
   "Ping.tags: expected str, got int". Nothing malformed ever reaches a constructor.
4. Size caps: each registry has defaults (`bytes_max`, `text_bytes_max`, `items_max`); a
   field may set its own with `typing.Annotated[bytes, Limit(32, minimum=32)]` (a `Limit`
   on `tuple[...]` bounds the item count; on str, the UTF-8 bytes).
5. Encoding checks the same schema and raises LocalProtocolError: sending a malformed
   message is our bug, and must not become the peer's problem.
6. Type id 0 is reserved (it was the compressed envelope of protocol versions 2 and 3).
   Compression and bundling are the connection's business (wire/peer_frames.py): a message
   encodes the same whatever carries it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any

from ..core.errors import LocalProtocolError, RemoteProtocolError
from ..core.records import COUNTER_MAX, NODE_ID_BYTES, WALL_MS_MAX, Record, Version
from ..core.schema import Limit
from . import cbor
from .declared import WALK_BYTES_MIN, Declared
from .field_codegen import generate, generate_pair, inline_check
from .record_codec import batch_codec

__all__ = ["PEER_MESSAGES", "Limit", "MessageError", "MessageRegistry"]

# CBOR's major types 0 and 1 hold integers in [-2**64, 2**64 - 1]; anything wider needs a
# bignum tag, which the strict decoder refuses, so the encoder refuses it first.
INT_MIN = -(2**64)
INT_MAX = 2**64 - 1
# An Ed25519 signature (a signed record's `signature`).
SIGNATURE_BYTES = 64
# Type ids are small so that they encode in one or two bytes.
TYPE_ID_MAX = 65535


class MessageError(RemoteProtocolError):
    """Bytes from a peer that are not a well-formed registered message."""


_Encoder = Callable[[Any], Any]
_Decoder = Callable[[Any], Any]


class MessageRegistry:
    """Registered message classes and their compiled codecs.

    Args:
        bytes_max: default cap on a bytes field (a record value may be up to ~1 MiB).
        text_bytes_max: default cap on a str field, in UTF-8 bytes.
        items_max: default cap on the items of a tuple field.
        depth_max: CBOR nesting depth accepted when decoding.
        check_heads: check the declared structure first (rule 3; off to measure it), of
            messages of at least `walk_bytes_min` bytes.
    """

    def __init__(
        self,
        *,
        bytes_max: int = 4 * 1024 * 1024,
        text_bytes_max: int = 4096,
        items_max: int = 65536,
        depth_max: int = cbor.DEPTH_MAX,
        check_heads: bool = True,
        walk_bytes_min: int = WALK_BYTES_MIN,
    ) -> None:
        self.bytes_max = bytes_max
        self.text_bytes_max = text_bytes_max
        self.items_max = items_max
        self.depth_max = depth_max
        self._by_id: dict[int, tuple[type, _Decoder]] = {}
        self._by_class: dict[type, tuple[int, _Encoder]] = {}
        self.check_heads = check_heads
        self._declared = Declared(items_max, MessageError, walk_bytes_min)  # rule 3

    def register(self, type_id: int, cls: type) -> type:
        """Register `cls` under `type_id` and return it. Raises LocalProtocolError if unfit."""
        if not 0 < type_id <= TYPE_ID_MAX or isinstance(type_id, bool):
            raise LocalProtocolError(f"type id {type_id!r} is not in 1..{TYPE_ID_MAX}")
        if type_id in self._by_id:
            raise LocalProtocolError(
                f"type id {type_id} is taken by {self._by_id[type_id][0].__name__}"
            )
        if cls in self._by_class:
            raise LocalProtocolError(f"{cls.__name__} is already registered")
        encode_fields, decode_fields = self._compile_dataclass(cls, cls.__name__)
        self._declared.register(type_id, cls)
        self._by_id[type_id] = (cls, decode_fields)
        self._by_class[cls] = (type_id, encode_fields)
        return cls

    def type_id(self, cls: type) -> int:
        return self._by_class[cls][0]

    def encode(self, message: object) -> bytes:
        """Canonical CBOR for a registered message. Raises LocalProtocolError if malformed."""
        entry = self._by_class.get(type(message))
        if entry is None:
            raise LocalProtocolError(f"{type(message).__name__} is not a registered message")
        type_id, encode_fields = entry
        return cbor.encode([type_id, *encode_fields(message)])

    def decode(self, data: bytes, *, depth_max: int | None = None) -> object:
        """The message in `data`. Raises MessageError with a one-line reason.

        `depth_max` overrides the registry's CBOR nesting limit (the transport passes
        `WireConfig.cbor_depth_max`).
        """
        if self.check_heads:
            self._declared.check(data)
        raw = self._raw(data, depth_max)
        if not isinstance(raw, list) or not raw:
            raise MessageError(f"a message must be a non-empty array, got {_kind(raw)}")
        type_id = raw[0]
        if not isinstance(type_id, int) or isinstance(type_id, bool):
            raise MessageError(f"message type id must be an integer, got {_kind(type_id)}")
        entry = self._by_id.get(type_id)
        if entry is None:
            raise MessageError(f"unknown message type id {type_id}")
        return entry[1](raw[1:])

    def _raw(self, data: bytes, depth_max: int | None) -> Any:
        try:
            return cbor.decode(data, depth_max=depth_max or self.depth_max)
        except cbor.CborError as error:
            raise MessageError(str(error)) from None

    # -- compilation: one encoder and one decoder per hint --------------------------------

    def _compile_dataclass(
        self, cls: type, where: str
    ) -> tuple[_Encoder, _Decoder]:
        if not dataclasses.is_dataclass(cls):
            raise LocalProtocolError(f"{where}: {cls!r} is not a dataclass")
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = [f for f in dataclasses.fields(cls) if f.init]
        names = [f.name for f in fields]
        codecs = [self._compile(hints[name], f"{where}.{name}") for name in names]
        encoders = [codec[0] for codec in codecs]
        decoders = [codec[1] for codec in codecs]
        count = len(names)
        check = _CHECKS.get(cls)

        def encode_fields(value: Any) -> list[Any]:
            if type(value) is not cls:
                raise LocalProtocolError(f"{where}: expected {cls.__name__}, got {_kind(value)}")
            return [
                encode(getattr(value, name)) for encode, name in zip(encoders, names, strict=True)
            ]

        def decode_fields(raw: Any) -> Any:
            if not isinstance(raw, list) or len(raw) != count:
                got = f"{len(raw)} fields" if isinstance(raw, list) else _kind(raw)
                raise MessageError(f"{where}: expected an array of {count} fields, got {got}")
            values = [decode(item) for decode, item in zip(decoders, raw, strict=True)]
            if check is not None:
                check(where, values)
            return cls(*values)

        # The same codec as straight-line code (field_codegen.py): these loops stay as
        # its slow path, which raises every error.
        inline = [self._inline(hints[name]) for name in names]
        return generate(cls, names, inline, encoders, decoders, check, where,
                        encode_fields, decode_fields)

    def _inline(self, hint: Any) -> str | None:
        return inline_check(hint, bytes_max=self.bytes_max, text_bytes_max=self.text_bytes_max,
                            int_min=INT_MIN, int_max=INT_MAX)

    def _compile(
        self, hint: Any, where: str, limit: Limit | None = None
    ) -> tuple[_Encoder, _Decoder]:
        if typing.get_origin(hint) is typing.Annotated:
            base, *extras = typing.get_args(hint)
            limits = [extra for extra in extras if isinstance(extra, Limit)]
            return self._compile(base, where, limits[0] if limits else None)
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            if len(options) != 1 or len(typing.get_args(hint)) != 2:
                raise LocalProtocolError(f"{where}: only `X | None` unions are supported")
            return _optional(*self._compile(options[0], where, limit))
        if origin is tuple:
            args = typing.get_args(hint)
            if args == (Record, Ellipsis):  # a record batch has its own, compact form
                return batch_codec(where, items_max=(limit or Limit(self.items_max)).maximum,
                                   text_bytes_max=self.text_bytes_max, bytes_max=self.bytes_max,
                                   error=MessageError)
            if len(args) == 2 and args[1] is Ellipsis:
                item = self._compile(args[0], f"{where}[]")
                return _tuple(where, *item, limit or Limit(self.items_max))
            if not args or Ellipsis in args:
                raise LocalProtocolError(f"{where}: only tuple[X, ...] or tuple[X, Y] is supported")
            items = [self._compile(arg, f"{where}[{i}]") for i, arg in enumerate(args)]
            checks = [self._inline(arg) for arg in args]
            if len(args) == 2 and None not in checks:  # every tag of every member statement
                return generate_pair(checks, *_fixed_tuple(where, items))
            return _fixed_tuple(where, items)
        if hint is bool:
            return _scalar(where, bool, None)
        if hint is int:
            return _scalar(where, int, _check_int_range)
        if hint is float:
            return _scalar(where, float, _check_finite)
        if hint is str:
            return _sized(where, str, limit or Limit(self.text_bytes_max), _utf8_length)
        if hint is bytes:
            return _sized(where, bytes, limit or Limit(self.bytes_max), len)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self._compile_dataclass(hint, where)
        raise LocalProtocolError(f"{where}: unsupported field type {hint!r}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _scalar(
    where: str, kind: type, check: Callable[[Any], str | None] | None
) -> tuple[_Encoder, _Decoder]:
    # Every field of every message passes through one of these closures: each checks in
    # one call, and builds a reason only for a value that fails.
    def problem(value: Any) -> str | None:
        if type(value) is not kind:
            return f"expected {kind.__name__}, got {_kind(value)}"
        return None if check is None else check(value)

    def encode(value: Any) -> Any:
        if type(value) is not kind or (check is not None and check(value)):
            raise LocalProtocolError(f"{where}: {problem(value)}")
        return value

    def decode(raw: Any) -> Any:
        if type(raw) is not kind or (check is not None and check(raw)):
            raise MessageError(f"{where}: {problem(raw)}")
        return raw

    return encode, decode


def _utf8_length(text: str) -> int:
    # ASCII text (nearly all of it: names, tags, keys) is as long in UTF-8 as in Python,
    # and telling so allocates nothing.
    return len(text) if text.isascii() else len(text.encode())


def _check_int_range(value: int) -> str | None:
    return None if INT_MIN <= value <= INT_MAX else f"integer {value} does not fit 64 bits"


def _check_finite(value: float) -> str | None:
    return None if math.isfinite(value) else f"float {value} is not finite"


def _sized(
    where: str, kind: type, limit: Limit, size: Callable[[Any], int]
) -> tuple[_Encoder, _Decoder]:
    minimum, maximum = limit.minimum, limit.maximum

    def problem(value: Any) -> str | None:
        if type(value) is not kind:
            return f"expected {kind.__name__}, got {_kind(value)}"
        length = size(value)
        if not minimum <= length <= maximum:
            return f"{length} bytes, expected {_range(limit)}"
        return None

    def encode(value: Any) -> Any:
        if type(value) is not kind or not minimum <= size(value) <= maximum:
            raise LocalProtocolError(f"{where}: {problem(value)}")
        return value

    def decode(raw: Any) -> Any:
        if type(raw) is not kind or not minimum <= size(raw) <= maximum:
            raise MessageError(f"{where}: {problem(raw)}")
        return raw

    return encode, decode


def _range(limit: Limit) -> str:
    if limit.minimum == limit.maximum:
        return f"exactly {limit.maximum}"
    return f"{limit.minimum} to {limit.maximum}"


def _optional(encode_item: _Encoder, decode_item: _Decoder) -> tuple[_Encoder, _Decoder]:
    def encode(value: Any) -> Any:
        return None if value is None else encode_item(value)

    def decode(raw: Any) -> Any:
        return None if raw is None else decode_item(raw)

    return encode, decode


def _tuple(
    where: str, encode_item: _Encoder, decode_item: _Decoder, limit: Limit
) -> tuple[_Encoder, _Decoder]:
    def encode(value: Any) -> Any:
        if type(value) is not tuple:
            raise LocalProtocolError(f"{where}: expected tuple, got {_kind(value)}")
        if not limit.minimum <= len(value) <= limit.maximum:
            raise LocalProtocolError(f"{where}: {len(value)} items, expected {_range(limit)}")
        return [encode_item(item) for item in value]

    def decode(raw: Any) -> Any:
        if not isinstance(raw, list):
            raise MessageError(f"{where}: expected an array, got {_kind(raw)}")
        if not limit.minimum <= len(raw) <= limit.maximum:
            raise MessageError(f"{where}: {len(raw)} items, expected {_range(limit)}")
        return tuple([decode_item(item) for item in raw])

    return encode, decode


def _fixed_tuple(where: str, items: list[tuple[_Encoder, _Decoder]]) -> tuple[_Encoder, _Decoder]:
    """tuple[A, B]: exactly len(items) values, each of its own type."""

    encoders = [item[0] for item in items]
    decoders = [item[1] for item in items]
    count = len(items)
    if count == 2:  # every tag of every member statement: unrolled, the same checks
        return _pair(where, *encoders, *decoders)

    def encode(value: Any) -> Any:
        if type(value) is not tuple or len(value) != count:
            raise LocalProtocolError(f"{where}: expected a tuple of {count} values")
        return [encode_item(v) for encode_item, v in zip(encoders, value, strict=True)]

    def decode(raw: Any) -> Any:
        if not isinstance(raw, list) or len(raw) != count:
            raise MessageError(f"{where}: expected an array of {count} values")
        return tuple([decode_item(v) for decode_item, v in zip(decoders, raw, strict=True)])

    return encode, decode


def _pair(where: str, encode_first: _Encoder, encode_second: _Encoder,
          decode_first: _Decoder, decode_second: _Decoder) -> tuple[_Encoder, _Decoder]:
    """tuple[A, B], as `_fixed_tuple` checks it, without a loop."""

    def encode(value: Any) -> Any:
        if type(value) is not tuple or len(value) != 2:
            raise LocalProtocolError(f"{where}: expected a tuple of 2 values")
        return [encode_first(value[0]), encode_second(value[1])]

    def decode(raw: Any) -> Any:
        if not isinstance(raw, list) or len(raw) != 2:
            raise MessageError(f"{where}: expected an array of 2 values")
        return (decode_first(raw[0]), decode_second(raw[1]))

    return encode, decode


def _check_version(where: str, values: list[Any]) -> None:
    # Version's own __post_init__ only asserts; a peer's bad stamp must be a MessageError.
    wall_ms, counter, origin = values
    if not 0 <= wall_ms <= WALL_MS_MAX:
        raise MessageError(f"{where}.wall_ms: {wall_ms} is out of range")
    if not 0 <= counter <= COUNTER_MAX:
        raise MessageError(f"{where}.counter: {counter} is out of range")
    if len(origin) != NODE_ID_BYTES:
        raise MessageError(f"{where}.origin: {len(origin)} bytes, expected {NODE_ID_BYTES}")


def _check_record(where: str, values: list[Any]) -> None:
    dataset, key, _value, _version, signature = values
    if not dataset or not key:
        raise MessageError(f"{where}: a record needs a dataset and a key")
    if signature is not None and len(signature) != SIGNATURE_BYTES:
        raise MessageError(f"{where}.signature: {len(signature)} bytes, expected "
                           f"{SIGNATURE_BYTES}")


# Extra checks of decoded field values, run before a class's constructor.
_CHECKS: dict[type, Callable[[str, list[Any]], None]] = {
    Version: _check_version,
    Record: _check_record,
}


# The registry of the core's peer messages. The modules that define them register here,
# each with a stable type id; the transport encodes and decodes with it by default.
PEER_MESSAGES = MessageRegistry()
