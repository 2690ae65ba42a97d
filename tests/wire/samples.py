"""Sample message classes for the wire tests (the real ones belong to the core)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from gossipnode.core.records import Record, Version
from gossipnode.wire.messages import Limit, MessageRegistry


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    count: int
    ratio: float
    flag: bool
    blob: bytes | None


@dataclass(frozen=True, slots=True)
class Batch:
    items: tuple[Item, ...]
    records: tuple[Record, ...]
    tags: Annotated[tuple[str, ...], Limit(3)]
    digest: Annotated[bytes, Limit(32, minimum=32)]
    stamp: Version | None


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes


def sample_registry(**options) -> MessageRegistry:
    registry = MessageRegistry(text_bytes_max=64, items_max=100, **options)
    registry.register(1, Item)
    registry.register(2, Batch)
    registry.register(3, Blob)
    return registry


ORIGIN = bytes(range(32))


def sample_batch() -> Batch:
    version = Version(1_700_000_000_000, 3, ORIGIN)
    return Batch(
        items=(Item("a", -5, 0.5, True, None), Item("b", 2**64 - 1, -1e300, False, b"\x00")),
        records=(
            Record("consumers", "alice@example.com", b"\xa1\x61a\x01", version),
            Record("groups", "g1", None, Version(0, 0, bytes(32))),
        ),
        tags=("wep", "private_keys"),
        digest=b"\x11" * 32,
        stamp=version,
    )
