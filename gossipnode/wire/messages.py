"""Peer messages <-> canonical CBOR, checked against each message class's type hints.

Theory of operation:
1. The core's messages are frozen dataclasses whose fields are typed with int, str, bytes,
   bool, float, `X | None`, `tuple[X, ...]`, Record, Version, or another such dataclass.
   A `MessageRegistry` maps each message class to a small stable integer type id. It checks
   the hints at registration (an unfit class is refused there) and compiles an encoder and
   a decoder from them when the class is first encoded or decoded (the field codecs are in
   wire/field_codecs.py): an agent's start-up does not pay for the codecs of messages it
   has not yet sent or received (about 10 ms of CPU for all peer and handshake messages).
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
import types
import typing
from typing import Any

from ..core.errors import LocalProtocolError
from ..core.records import Record
from ..core.schema import Limit
from . import cbor
from .declared import WALK_BYTES_MIN, Declared
from .field_codecs import (
    CHECKS,
    INT_MAX,
    INT_MIN,
    TYPE_ID_MAX,
    Decoder,
    Encoder,
    MessageError,
    check_finite,
    check_int_range,
    fixed_tuple,
    kind_of,
    optional,
    scalar,
    sized,
    tuple_codec,
    utf8_length,
)
from .field_codegen import generate, generate_pair, inline_check
from .record_codec import batch_codec

__all__ = ["PEER_MESSAGES", "Limit", "MessageError", "MessageRegistry"]

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
        self._classes: dict[int, type] = {}  # every registered class, by its type id
        self._type_ids: dict[type, int] = {}
        # The compiled codecs, filled on first use (rule 1); `_pending` lists the ids of the
        # registered classes not compiled yet.
        self._by_id: dict[int, tuple[type, Decoder]] = {}
        self._by_class: dict[type, tuple[int, Encoder]] = {}
        self._pending: set[int] = set()
        self._hints: dict[type, dict[str, Any]] = {}  # type_hints() of each class, once
        self.check_heads = check_heads
        self._walk_bytes_min = walk_bytes_min
        self._declared = Declared(items_max, MessageError, walk_bytes_min)  # rule 3

    def register(self, type_id: int, cls: type) -> type:
        """Register `cls` under `type_id` and return it. Raises LocalProtocolError if unfit."""
        if not 0 < type_id <= TYPE_ID_MAX or isinstance(type_id, bool):
            raise LocalProtocolError(f"type id {type_id!r} is not in 1..{TYPE_ID_MAX}")
        if type_id in self._classes:
            raise LocalProtocolError(
                f"type id {type_id} is taken by {self._classes[type_id].__name__}"
            )
        if cls in self._type_ids:
            raise LocalProtocolError(f"{cls.__name__} is already registered")
        self._check_dataclass(cls, cls.__name__, set())
        self._classes[type_id] = cls
        self._type_ids[cls] = type_id
        self._pending.add(type_id)
        return cls

    def type_id(self, cls: type) -> int:
        return self._type_ids[cls]

    def compile_all(self) -> None:
        """Compile the codecs of every registered class now, not at first use."""
        for type_id in sorted(self._pending):
            self._compile_type(type_id)

    def encode(self, message: object) -> bytes:
        """Canonical CBOR for a registered message. Raises LocalProtocolError if malformed."""
        entry = self._by_class.get(type(message))
        if entry is None:
            type_id = self._type_ids.get(type(message))
            if type_id is None:
                raise LocalProtocolError(f"{type(message).__name__} is not a registered message")
            self._compile_type(type_id)
            entry = self._by_class[type(message)]
        type_id, encode_fields = entry
        return cbor.encode([type_id, *encode_fields(message)])

    def decode(self, data: bytes, *, depth_max: int | None = None) -> object:
        """The message in `data`. Raises MessageError with a one-line reason.

        `depth_max` overrides the registry's CBOR nesting limit (the transport passes
        `WireConfig.cbor_depth_max`).
        """
        if self.check_heads:
            if self._pending and len(data) >= self._walk_bytes_min:
                # The walk knows the structure of the compiled classes only, and a message
                # this long may be walked (declared.py rule 6): every class must be known.
                self.compile_all()
            self._declared.check(data)
        raw = self._raw(data, depth_max)
        if not isinstance(raw, list) or not raw:
            raise MessageError(f"a message must be a non-empty array, got {kind_of(raw)}")
        type_id = raw[0]
        if not isinstance(type_id, int) or isinstance(type_id, bool):
            raise MessageError(f"message type id must be an integer, got {kind_of(type_id)}")
        entry = self._by_id.get(type_id)
        if entry is None:
            if type_id not in self._classes:
                raise MessageError(f"unknown message type id {type_id}")
            self._compile_type(type_id)
            entry = self._by_id[type_id]
        return entry[1](raw[1:])

    def _raw(self, data: bytes, depth_max: int | None) -> Any:
        try:
            return cbor.decode(data, depth_max=depth_max or self.depth_max)
        except cbor.CborError as error:
            raise MessageError(str(error)) from None

    # -- the check at registration: every hint of the class and of those it nests --------

    def _check_dataclass(self, cls: type, where: str, checked: set[type]) -> None:
        """Raise the LocalProtocolError that compiling `cls` would raise, if any, without
        compiling it. A class checked once is not walked again (`checked`): its first
        refusal, the one the compiler would meet first, has been raised already."""
        if not dataclasses.is_dataclass(cls):
            raise LocalProtocolError(f"{where}: {cls!r} is not a dataclass")
        checked.add(cls)
        hints = self._hints_of(cls)
        for field in dataclasses.fields(cls):
            if field.init:
                self._check(hints[field.name], f"{where}.{field.name}", checked)

    def _hints_of(self, cls: type) -> dict[str, Any]:
        hints = self._hints.get(cls)
        if hints is None:
            hints = self._hints[cls] = typing.get_type_hints(cls, include_extras=True)
        return hints

    def _check(self, hint: Any, where: str, checked: set[type]) -> None:
        kind, inner, _ = self._kind(hint, where, None)
        if kind == "dataclass":
            if inner not in checked:
                self._check_dataclass(inner, where, checked)
        elif kind in ("optional", "items"):
            self._check(inner, where if kind == "optional" else f"{where}[]", checked)
        elif kind == "fixed":
            for i, arg in enumerate(inner):
                self._check(arg, f"{where}[{i}]", checked)

    def _kind(self, hint: Any, where: str, limit: Limit | None) -> tuple[str, Any, Limit | None]:
        """What a field's hint is, as (kind, its argument, the Limit on it); raises
        LocalProtocolError for a hint no codec exists for. The kinds: "optional" (of
        argument), "batch" (`tuple[Record, ...]`), "items" (`tuple[argument, ...]`),
        "fixed" (a tuple of the types in argument), "scalar" (argument, one of bool, int,
        float, str, bytes) and "dataclass" (argument)."""
        origin = typing.get_origin(hint)
        if origin is typing.Annotated:
            base, *extras = typing.get_args(hint)
            limits = [extra for extra in extras if isinstance(extra, Limit)]
            return self._kind(base, where, limits[0] if limits else None)
        if origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            if len(options) != 1 or len(typing.get_args(hint)) != 2:
                raise LocalProtocolError(f"{where}: only `X | None` unions are supported")
            return "optional", options[0], limit
        if origin is tuple:
            args = typing.get_args(hint)
            if args == (Record, Ellipsis):
                return "batch", None, limit
            if len(args) == 2 and args[1] is Ellipsis:
                return "items", args[0], limit
            if not args or Ellipsis in args:
                raise LocalProtocolError(f"{where}: only tuple[X, ...] or tuple[X, Y] is supported")
            return "fixed", args, None
        if hint in _SCALARS:
            return "scalar", hint, limit
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return "dataclass", hint, None
        raise LocalProtocolError(f"{where}: unsupported field type {hint!r}")

    # -- compilation: one encoder and one decoder per hint, at a class's first use ---------

    def _compile_type(self, type_id: int) -> None:
        cls = self._classes[type_id]
        encode_fields, decode_fields = self._compile_dataclass(cls, cls.__name__)
        self._declared.register(type_id, cls)
        self._by_id[type_id] = (cls, decode_fields)
        self._by_class[cls] = (type_id, encode_fields)
        self._pending.discard(type_id)

    def _compile_dataclass(
        self, cls: type, where: str
    ) -> tuple[Encoder, Decoder]:
        if not dataclasses.is_dataclass(cls):
            raise LocalProtocolError(f"{where}: {cls!r} is not a dataclass")
        hints = self._hints_of(cls)
        fields = [f for f in dataclasses.fields(cls) if f.init]
        names = [f.name for f in fields]
        codecs = [self._compile(hints[name], f"{where}.{name}") for name in names]
        encoders = [codec[0] for codec in codecs]
        decoders = [codec[1] for codec in codecs]
        count = len(names)
        check = CHECKS.get(cls)

        def encode_fields(value: Any) -> list[Any]:
            if type(value) is not cls:
                raise LocalProtocolError(f"{where}: expected {cls.__name__}, got {kind_of(value)}")
            return [
                encode(getattr(value, name)) for encode, name in zip(encoders, names, strict=True)
            ]

        def decode_fields(raw: Any) -> Any:
            if not isinstance(raw, list) or len(raw) != count:
                got = f"{len(raw)} fields" if isinstance(raw, list) else kind_of(raw)
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
    ) -> tuple[Encoder, Decoder]:
        kind, inner, limit = self._kind(hint, where, limit)
        if kind == "optional":
            return optional(*self._compile(inner, where, limit))
        if kind == "batch":  # a record batch has its own, compact form
            return batch_codec(where, items_max=(limit or Limit(self.items_max)).maximum,
                               text_bytes_max=self.text_bytes_max, bytes_max=self.bytes_max,
                               error=MessageError)
        if kind == "items":
            item = self._compile(inner, f"{where}[]")
            return tuple_codec(where, *item, limit or Limit(self.items_max))
        if kind == "fixed":
            items = [self._compile(arg, f"{where}[{i}]") for i, arg in enumerate(inner)]
            checks = [self._inline(arg) for arg in inner]
            if len(inner) == 2 and None not in checks:  # every tag of every member statement
                return generate_pair(checks, *fixed_tuple(where, items))
            return fixed_tuple(where, items)
        if kind == "dataclass":
            return self._compile_dataclass(inner, where)
        if inner is bool:
            return scalar(where, bool, None)
        if inner is int:
            return scalar(where, int, check_int_range)
        if inner is float:
            return scalar(where, float, check_finite)
        if inner is str:
            return sized(where, str, limit or Limit(self.text_bytes_max), utf8_length)
        return sized(where, bytes, limit or Limit(self.bytes_max), len)


_SCALARS = (bool, int, float, str, bytes)

# The registry of the core's peer messages. The modules that define them register here,
# each with a stable type id; the transport encodes and decodes with it by default.
PEER_MESSAGES = MessageRegistry()
