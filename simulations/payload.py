"""What a message carries: an estimate of its size, and the records inside it.

Core messages are frozen dataclasses whose fields are scalars, tuples, Records, Versions or
further such dataclasses (DESIGN.md, "Core messages"). One generic walk over those fields
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
# Messages nest only a few levels; deeper means a cycle or a bug in a core message type.
DEPTH_MAX = 32

_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(field.name for field in dataclasses.fields(cls))
        _FIELDS[cls] = names
    return names


def walk_message(message: object, records: list[Record]) -> int:
    """Append every Record inside `message` to `records`; return the estimated size."""
    return _walk(message, records, 0)


def _walk(value: Any, records: list[Record], depth: int) -> int:
    assert depth <= DEPTH_MAX, "message nests too deeply"
    if isinstance(value, bytes | str):
        return len(value)
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float):
        return NUMBER_BYTES
    if isinstance(value, Record):
        records.append(value)
        size = len(value.dataset) + len(value.key) + 2 * NUMBER_BYTES + len(value.version.origin)
        return size + (len(value.value) if value.value is not None else 1)
    if isinstance(value, Version):
        return 2 * NUMBER_BYTES + len(value.origin)
    if isinstance(value, tuple | list | frozenset):
        return CONTAINER_BYTES + sum(_walk(item, records, depth + 1) for item in value)
    if dataclasses.is_dataclass(value):
        return CONTAINER_BYTES + sum(
            _walk(getattr(value, name), records, depth + 1) for name in _field_names(type(value))
        )
    # An enum, a mapping or another type a core message should not hold: counted by its
    # text form, so that the estimate still moves and the walk never fails on it.
    return len(str(value))
