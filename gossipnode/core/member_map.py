"""Snapshots of the member list that cost O(1) to take, not a copy of every member.

`MemberViews` (member_views.py) hands out a new `ScopeView` at every membership change, and
each view must keep the members as they were (scopes.py rule 1). A copy of the whole list per
change cost O(n) each time: O(n**2) for one node while a cluster of n members forms or
heals (every member joins, is suspected, is declared dead, comes back), O(n**3) for the
cluster.

Rules:
1. `MemberMap` is a read-only `Mapping`: what `MemberMapBuilder.snapshot()` returned never
   changes, whatever the builder does afterwards.
2. The builder keeps its entries in `BUCKETS` dicts, chosen by the key's last byte. A
   snapshot shares every bucket with the builder (O(BUCKETS), whatever the size), and the
   builder copies a shared bucket before its first change after a snapshot (O(n / BUCKETS)
   for uniform keys such as node ids, which are public keys or hashes).
3. Iteration is deterministic: bucket by bucket, and in insertion order within a bucket.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["BUCKETS", "MemberMap", "MemberMapBuilder"]

V = TypeVar("V")

# Buckets per map (rule 2): at the most members a node tracks (4096 by default) a change
# copies about 64 entries and a snapshot 64 references, instead of 4096 entries.
BUCKETS = 64


def _bucket(key: bytes) -> int:
    return key[-1] % BUCKETS if key else 0


class MemberMap(Mapping[bytes, V], Generic[V]):
    """An immutable snapshot (rule 1)."""

    __slots__ = ("_buckets", "_length")

    def __init__(self, buckets: tuple[dict[bytes, V], ...] = (), length: int = 0) -> None:
        self._buckets = buckets or tuple({} for _ in range(BUCKETS))
        self._length = length

    # The lookups spell out `_bucket` (a call less each: the view answers them per member
    # and message, a few million times in a simulated run of 400 members).
    def __getitem__(self, key: bytes) -> V:
        return self._buckets[key[-1] % BUCKETS if key else 0][key]

    def get(self, key: bytes, default: V | None = None) -> V | None:  # type: ignore[override]
        return self._buckets[key[-1] % BUCKETS if key else 0].get(key, default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and key in self._buckets[key[-1] % BUCKETS if key else 0]

    def __iter__(self) -> Iterator[bytes]:
        for bucket in self._buckets:
            yield from bucket

    def __len__(self) -> int:
        return self._length

    def values(self) -> Iterator[V]:  # type: ignore[override]
        for bucket in self._buckets:
            yield from bucket.values()

    def items(self) -> Iterator[tuple[bytes, V]]:  # type: ignore[override]
        for bucket in self._buckets:
            yield from bucket.items()

    def shared_buckets(self, other: MemberMap[V]) -> int:
        """How many buckets this snapshot shares with `other` (the same dict objects)."""
        return sum(1 for mine, theirs in zip(self._buckets, other._buckets, strict=True)
                   if mine is theirs)


class MemberMapBuilder(Generic[V]):
    """The mutable side (rule 2): `get`, `set`, `snapshot`."""

    __slots__ = ("_buckets", "_length", "_shared")

    def __init__(self, entries: Mapping[bytes, V] | None = None) -> None:
        self._buckets: list[dict[bytes, V]] = [{} for _ in range(BUCKETS)]
        self._length = 0
        # Per bucket: is it shared with a snapshot (and so copied before its next change)?
        self._shared = [False] * BUCKETS
        for key, value in (entries or {}).items():
            self.set(key, value)

    def get(self, key: bytes) -> V | None:
        return self._buckets[key[-1] % BUCKETS if key else 0].get(key)

    def set(self, key: bytes, value: V) -> None:
        index = _bucket(key)
        bucket = self._buckets[index]
        if self._shared[index]:
            bucket = self._buckets[index] = dict(bucket)
            self._shared[index] = False
        if key not in bucket:
            self._length += 1
        bucket[key] = value

    def snapshot(self) -> MemberMap[V]:
        self._shared = [True] * BUCKETS
        return MemberMap(tuple(self._buckets), self._length)
