"""What crosses the virtual network: the wire bytes of a message, and the records inside it.

Every message a core sends is encoded by the real peer codec (gossipnode/driving.py, the
registry the agent's transport uses) and the receiver gets what the codec decodes from
those bytes, never the sender's object: a field the codec drops, mangles or refuses shows
up in a simulation exactly as it would between two agents. The byte counts of a report
are the lengths of those encodings.

Caches keep this affordable at a thousand members, without changing what a core sees:
the codec is a pure function, so
- the message just encoded is recognised by identity (a gossip round sends one message
  to several members) without hashing it;
- a message equal to one encoded recently is not encoded again (gossip sends the same
  updates to several peers: about two thirds of all sends repeat an earlier message).
  Equality is the dataclasses' `==`, under which `1 == 1.0 == True`: a core that put a
  bool where an int belongs would be refused by the codec only on a message that is not
  equal to a well-typed one sent just before. The wire tests cover the codec's strictness;
  this cache trades that corner for speed. A push-pull is never looked up: it carries a
  fresh random salt (an opening) or answers one (`membership/exchange.py`), so it never
  repeats, and hashing one (a frozen dataclass recomputes its hash at every call, over
  every statement of a full state) cost more than a twentieth of a 1,000-member run.
- identical bytes are decoded once, and the receivers share the decoded message (core
  messages are frozen dataclasses of immutable values, so sharing is safe).

The containment checker must see every Record a message carries however deeply it is
nested: `records_in` walks a message's fields, skipping, from its type hints, the
message classes that cannot hold a Record at all (membership traffic, most of it).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections import OrderedDict
from typing import Any

from gossipnode.core.membership import PushPull
from gossipnode.core.records import Record
from gossipnode.driving import PeerCodec

__all__ = ["SimCodec", "records_in"]

# Encodings remembered by message: a gossip round repeats its updates to a few peers
# within a few rounds, so a window of some thousands catches nearly every repeat.
ENCODE_CACHE_ENTRIES = 8192
# Decodings remembered by bytes: identical gossip reaches many members over a few rounds.
DECODE_CACHE_ENTRIES = 8192
# Wire bytes each cache holds at most, whatever its entries: at a thousand members a full
# state is tens of KiB on the wire and holds a thousand statements in memory, so 8192 of
# them would take gigabytes. The oldest entries go first.
CACHE_BYTES_MAX = 16 * 1024 * 1024


class SimCodec:
    def __init__(self, codec: PeerCodec) -> None:
        self.codec = codec
        # By the message's hash: (message, its bytes). A frozen dataclass recomputes its
        # hash over every field at each call, so the key is hashed once per `encode`, never
        # again to store or to evict it. Oldest first: both caches evict in O(1).
        self._encoded: OrderedDict[int, tuple[object, bytes]] = OrderedDict()
        self._decoded: OrderedDict[bytes, object] = OrderedDict()
        self._encoded_bytes = 0
        self._decoded_bytes = 0
        self._last_message: object = None
        self._last_data = b""
        self.encodes = 0
        self.decodes = 0

    def encode(self, message: object) -> bytes:
        """Raises LocalProtocolError for a message outside the schema."""
        if message is self._last_message:  # one gossip round: one message to several
            return self._last_data
        if type(message) is PushPull:  # never repeats (see above): not worth its hash
            data = self.codec.encode(message)
            self.encodes += 1
            self._last_message, self._last_data = message, data
            return data
        try:
            key = hash(message)
        except TypeError:  # unhashable: not a frozen message; the codec says why
            return self.codec.encode(message)
        cached = self._encoded.get(key)
        if cached is not None:
            if cached[0] == message:
                self._last_message, self._last_data = message, cached[1]
                return cached[1]
            # Another message with the same hash: this one takes its place.
            self._encoded_bytes -= len(self._encoded.pop(key)[1])
        data = self.codec.encode(message)
        self.encodes += 1
        self._last_message, self._last_data = message, data
        self._encoded_bytes += len(data)
        while self._encoded and (len(self._encoded) >= ENCODE_CACHE_ENTRIES
                                 or self._encoded_bytes > CACHE_BYTES_MAX):
            self._encoded_bytes -= len(self._encoded.popitem(last=False)[1][1])
        self._encoded[key] = (message, data)
        return data

    def decode(self, data: bytes) -> object:
        """Raises MessageError (a RemoteProtocolError) for bytes outside the schema."""
        message = self._decoded.get(data)
        if message is None:
            message = self.codec.decode(data)
            self.decodes += 1
            self._decoded_bytes += len(data)
            while self._decoded and (len(self._decoded) >= DECODE_CACHE_ENTRIES
                                     or self._decoded_bytes > CACHE_BYTES_MAX):
                oldest, _ = self._decoded.popitem(last=False)
                self._decoded_bytes -= len(oldest)
            self._decoded[data] = message
        return message


# Per class met in a message: the names of the fields that may hold a Record (empty: none
# can, which is every class that is not a dataclass).
_RECORD_FIELDS: dict[type, tuple[str, ...]] = {}


def records_in(message: object, records: list[Record]) -> None:
    """Append every Record inside `message` to `records`."""
    _walk(message, records)


def _walk(value: Any, records: list[Record]) -> None:
    cls = type(value)
    if cls is Record:
        records.append(value)
    elif cls is tuple or cls is list:
        for item in value:
            _walk(item, records)
    else:
        names = _RECORD_FIELDS.get(cls)
        if names is None:  # first seen: any other class than a dataclass holds none
            names = _RECORD_FIELDS[cls] = (_fields_holding_records(cls)
                                           if dataclasses.is_dataclass(cls) else ())
        for name in names:
            _walk(getattr(value, name), records)


def _fields_holding_records(cls: type) -> tuple[str, ...]:
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # unresolvable hints: walk every field to be safe
        return tuple(field.name for field in dataclasses.fields(cls))
    return tuple(field.name for field in dataclasses.fields(cls)
                 if _may_hold_record(hints.get(field.name, Any), set()))


def _may_hold_record(hint: Any, seen: set[int]) -> bool:
    if hint is Record or hint is Any:
        return True
    if id(hint) in seen:
        return False
    seen.add(id(hint))
    origin = typing.get_origin(hint)
    if origin is not None or isinstance(hint, types.UnionType):
        return any(_may_hold_record(arg, seen) for arg in typing.get_args(hint)
                   if arg is not Ellipsis)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        try:
            nested = typing.get_type_hints(hint)
        except (NameError, TypeError):
            return True
        return any(_may_hold_record(item, seen) for item in nested.values())
    return False
