"""Strict canonical CBOR for bytes that come from outside (peers, files, clients).

Decoding accepts only what `encode` would have produced: bounded depth, definite lengths,
no duplicate map keys, no semantic tags at all (built-in ones included: cbor2 would turn
them into regexes, e-mail messages, huge integers or cycles), nothing trailing, canonical
bytes only. Anything else raises `CborError`. Each check is needed with cbor2 6.x, whose
decoder by itself accepts indefinite lengths, duplicate keys and non-shortest forms, and
turns semantic tags into rich objects (invariant 7 in docs/architecture.md).

Record values are CBOR maps with text keys: `encode_value` / `decode_value`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cbor2

__all__ = ["CborError", "decode", "decode_value", "encode", "encode_value"]

# Our own messages nest fewer than 8 levels; record values may nest a little deeper.
DEPTH_MAX = 16


class CborError(ValueError):
    """Bytes that are not strict canonical CBOR, or a value that cannot be encoded."""


class _NoTags(Mapping):
    """A semantic-decoder table that rejects every tag, built-in or not."""

    def __getitem__(self, tag: object) -> Any:
        raise ValueError(f"CBOR tag {tag} is not allowed")

    def __iter__(self):  # type: ignore[override]
        return iter(())

    def __len__(self) -> int:
        return 0


_NO_TAGS = _NoTags()


def encode(value: Any) -> bytes:
    """Canonical CBOR: map keys sorted, shortest forms, so equal values give equal bytes."""
    try:
        return cbor2.dumps(value, canonical=True)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as error:
        raise CborError(f"cannot encode: {error}") from None


def decode(data: bytes, *, depth_max: int = DEPTH_MAX) -> Any:
    """Decode strict canonical CBOR. Raises CborError with a one-line reason."""
    try:
        value = cbor2.loads(
            data,
            max_depth=depth_max,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
            semantic_decoders=_NO_TAGS,
        )
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as error:
        raise CborError(f"malformed CBOR: {_reason(error)}") from None
    try:
        canonical = cbor2.dumps(value, canonical=True)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as error:
        raise CborError(f"malformed CBOR: {error}") from None
    if canonical != data:
        if data.startswith(canonical):
            raise CborError(f"malformed CBOR: {len(data) - len(canonical)} trailing bytes")
        raise CborError("malformed CBOR: not in canonical form")
    return value


def _reason(error: BaseException) -> str:
    # cbor2 wraps the original exception; the innermost one says what was wrong.
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def encode_value(value: Any) -> bytes:
    """Encode a record value: a map with text keys. Raises CborError otherwise."""
    _check_value(value)
    return encode(value)


def decode_value(data: bytes) -> dict[str, Any]:
    """Decode a record value and check it is a map with text keys."""
    value = decode(data)
    _check_value(value)
    return value


def _check_value(value: Any) -> None:
    if not isinstance(value, dict):
        raise CborError(f"a record value must be a map, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            # The type only: the key itself may be anything, a private key too, and this
            # reason is logged.
            raise CborError(f"record value keys must be strings, got {type(key).__name__}")
