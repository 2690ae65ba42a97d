"""Size caps that a message class declares on its fields, for the wire codec.

The core's messages are dataclasses; a field typed `typing.Annotated[X, Limit(...)]`
carries its own cap, which wire/messages.py checks when it decodes the field: for a tuple,
on the item count before any item is decoded, so that a message with too many items costs
no work per item.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limit"]


@dataclass(frozen=True, slots=True)
class Limit:
    """A size cap for one field: bytes of bytes/str (UTF-8), or items of a tuple."""

    maximum: int
    minimum: int = 0
