"""What a message carries: an estimate of its size, and the records inside it.

Core messages are frozen dataclasses whose fields are scalars, tuples, Records, Versions or
further such dataclasses (see gossipnode/core/events.py). One generic walk over those fields
serves both the byte count of a report and the containment checker, which must see every
Record a message carries however deeply it is nested.

The size is an ESTIMATE of the encoded size, not the wire encoding: bytes and text count
their length, numbers 8 bytes, None and booleans 1, and each container 2 bytes of framing.
It is fast (no encoding) and stable, which is what a deterministic report needs. A caller
who wants exact figures passes its own `message_size` hook to the cluster.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gossipnode.core.records import Record, Version

__all__ = ["walk_message"]

# Framing overhead of a container (tuple or message), and of a number, in the estimate.
CONTAINER_BYTES = 2
NUMBER_BYTES = 8
SCALAR_BYTES = 1  # None and booleans

# Field names per message class, looked up once: the walk runs at every send, so it
# dispatches on the exact type first and falls back to isinstance only for rare types.
_FIELDS: dict[type, tuple[str, ...]] = {}


def walk_message(message: object, records: list[Record]) -> int:
    """Append every Record inside `message` to `records`; return the estimated size."""
    return _walk(message, records)


def _walk(value: Any, records: list[Record]) -> int:
    cls = type(value)
    if cls is bytes or cls is str:
        return len(value)
    if cls is int or cls is float:
        return NUMBER_BYTES
    if cls is Record:
        records.append(value)
        size = len(value.dataset) + len(value.key) + 2 * NUMBER_BYTES + len(value.version.origin)
        return size + (len(value.value) if value.value is not None else SCALAR_BYTES)
    if cls is tuple:
        total = CONTAINER_BYTES
        for item in value:
            total += _walk(item, records)
        return total
    names = _FIELDS.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(value):
            return _walk_rare(value, records)
        names = _FIELDS[cls] = tuple(field.name for field in dataclasses.fields(cls))
    total = CONTAINER_BYTES
    for name in names:
        total += _walk(getattr(value, name), records)
    return total


def _walk_rare(value: Any, records: list[Record]) -> int:
    if value is None or isinstance(value, bool):
        return SCALAR_BYTES
    if isinstance(value, int | float):
        return NUMBER_BYTES
    if isinstance(value, bytes | str):
        return len(value)
    if isinstance(value, Version):
        return 2 * NUMBER_BYTES + len(value.origin)
    if isinstance(value, tuple | list | frozenset):
        return CONTAINER_BYTES + sum(_walk(item, records) for item in value)
    # An enum, a mapping or another type a core message should not hold: counted by its
    # text form, so that the estimate still moves and the walk never fails on it.
    return len(str(value))
