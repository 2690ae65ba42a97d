"""The field codecs a `MessageRegistry` (wire/messages.py) compiles a message class into:
one encoder and one decoder per field hint (scalars, sized str and bytes, optionals,
tuples, fixed tuples, nested dataclasses), the range checks of Version and Record, and
`MessageError`, the refusal every decoder raises with the field's name in its text."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..core.errors import LocalProtocolError, RemoteProtocolError
from ..core.records import COUNTER_MAX, NODE_ID_BYTES, WALL_MS_MAX, Record, Version
from ..core.schema import Limit

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


Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def kind_of(value: Any) -> str:
    """A value's CBOR-side kind for a refusal's text."""
    return "null" if value is None else type(value).__name__


def scalar(
    where: str, kind: type, check: Callable[[Any], str | None] | None
) -> tuple[Encoder, Decoder]:
    # Every field of every message passes through one of these closures: each checks in
    # one call, and builds a reason only for a value that fails.
    def problem(value: Any) -> str | None:
        if type(value) is not kind:
            return f"expected {kind.__name__}, got {kind_of(value)}"
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


def utf8_length(text: str) -> int:
    # ASCII text (nearly all of it: names, tags, keys) is as long in UTF-8 as in Python,
    # and telling so allocates nothing.
    return len(text) if text.isascii() else len(text.encode())


def check_int_range(value: int) -> str | None:
    return None if INT_MIN <= value <= INT_MAX else f"integer {value} does not fit 64 bits"


def check_finite(value: float) -> str | None:
    return None if math.isfinite(value) else f"float {value} is not finite"


def sized(
    where: str, kind: type, limit: Limit, size: Callable[[Any], int]
) -> tuple[Encoder, Decoder]:
    minimum, maximum = limit.minimum, limit.maximum

    def problem(value: Any) -> str | None:
        if type(value) is not kind:
            return f"expected {kind.__name__}, got {kind_of(value)}"
        length = size(value)
        if not minimum <= length <= maximum:
            return f"{length} bytes, expected {describe_range(limit)}"
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


def describe_range(limit: Limit) -> str:
    if limit.minimum == limit.maximum:
        return f"exactly {limit.maximum}"
    return f"{limit.minimum} to {limit.maximum}"


def optional(encode_item: Encoder, decode_item: Decoder) -> tuple[Encoder, Decoder]:
    def encode(value: Any) -> Any:
        return None if value is None else encode_item(value)

    def decode(raw: Any) -> Any:
        return None if raw is None else decode_item(raw)

    return encode, decode


def tuple_codec(
    where: str, encode_item: Encoder, decode_item: Decoder, limit: Limit
) -> tuple[Encoder, Decoder]:
    def encode(value: Any) -> Any:
        if type(value) is not tuple:
            raise LocalProtocolError(f"{where}: expected tuple, got {kind_of(value)}")
        if not limit.minimum <= len(value) <= limit.maximum:
            raise LocalProtocolError(
                f"{where}: {len(value)} items, expected {describe_range(limit)}")
        return [encode_item(item) for item in value]

    def decode(raw: Any) -> Any:
        if not isinstance(raw, list):
            raise MessageError(f"{where}: expected an array, got {kind_of(raw)}")
        if not limit.minimum <= len(raw) <= limit.maximum:
            raise MessageError(f"{where}: {len(raw)} items, expected {describe_range(limit)}")
        return tuple([decode_item(item) for item in raw])

    return encode, decode


def fixed_tuple(where: str, items: list[tuple[Encoder, Decoder]]) -> tuple[Encoder, Decoder]:
    """tuple[A, B]: exactly len(items) values, each of its own type."""

    encoders = [item[0] for item in items]
    decoders = [item[1] for item in items]
    count = len(items)
    if count == 2:  # every tag of every member statement: unrolled, the same checks
        return pair(where, *encoders, *decoders)

    def encode(value: Any) -> Any:
        if type(value) is not tuple or len(value) != count:
            raise LocalProtocolError(f"{where}: expected a tuple of {count} values")
        return [encode_item(v) for encode_item, v in zip(encoders, value, strict=True)]

    def decode(raw: Any) -> Any:
        if not isinstance(raw, list) or len(raw) != count:
            raise MessageError(f"{where}: expected an array of {count} values")
        return tuple([decode_item(v) for decode_item, v in zip(decoders, raw, strict=True)])

    return encode, decode


def pair(where: str, encode_first: Encoder, encode_second: Encoder,
          decode_first: Decoder, decode_second: Decoder) -> tuple[Encoder, Decoder]:
    """tuple[A, B], as `fixed_tuple` checks it, without a loop."""

    def encode(value: Any) -> Any:
        if type(value) is not tuple or len(value) != 2:
            raise LocalProtocolError(f"{where}: expected a tuple of 2 values")
        return [encode_first(value[0]), encode_second(value[1])]

    def decode(raw: Any) -> Any:
        if not isinstance(raw, list) or len(raw) != 2:
            raise MessageError(f"{where}: expected an array of 2 values")
        return (decode_first(raw[0]), decode_second(raw[1]))

    return encode, decode


def check_version(where: str, values: list[Any]) -> None:
    # Version's own __post_init__ only asserts; a peer's bad stamp must be a MessageError.
    wall_ms, counter, origin = values
    if not 0 <= wall_ms <= WALL_MS_MAX:
        raise MessageError(f"{where}.wall_ms: {wall_ms} is out of range")
    if not 0 <= counter <= COUNTER_MAX:
        raise MessageError(f"{where}.counter: {counter} is out of range")
    if len(origin) != NODE_ID_BYTES:
        raise MessageError(f"{where}.origin: {len(origin)} bytes, expected {NODE_ID_BYTES}")


def check_record(where: str, values: list[Any]) -> None:
    dataset, key, _value, _version, signature = values
    if not dataset or not key:
        raise MessageError(f"{where}: a record needs a dataset and a key")
    if signature is not None and len(signature) != SIGNATURE_BYTES:
        raise MessageError(f"{where}.signature: {len(signature)} bytes, expected "
                           f"{SIGNATURE_BYTES}")


# Extra checks of decoded field values, run before a class's constructor.
CHECKS: dict[type, Callable[[str, list[Any]], None]] = {
    Version: check_version,
    Record: check_record,
}
