"""What one item of a range digest is: its leaf digest and its place in the order
(core/merkle.py has the theory; this module is its points 1 to 3).

1. Every record is one *item*. Its leaf digest is BLAKE2b-128 over (dataset, key, version,
   BLAKE2b-256 of the value, or a tombstone mark), so any change to any of those changes it.
2. Items are ordered by their *sort key*: the 6-byte big-endian `version.wall_ms` followed by
   the UTF-8 key. Records written at about the same time sit next to each other, so the
   differences left by replication lag (the newest writes) fall into a few ranges, while a
   key-level lookup still works (a key's item is at (wall_ms, key)).
3. The digest of a range is the *sum* of its leaf digests modulo 2**128 (`SUM_MASK`), an
   additive multiset hash: one item more or less is one addition or subtraction.
"""

from __future__ import annotations

import hashlib

from .records import Record

__all__ = ["LEAF_BYTES", "SUM_MASK", "WALL_BYTES", "leaf_digest", "separator", "sort_key"]

# Leaf digests and the root sum are 128 bits: a random collision of two different scopes'
# roots has probability 2**-128, so the root catches every difference in practice.
LEAF_BYTES = 16
SUM_MASK = (1 << (8 * LEAF_BYTES)) - 1
# Bytes of wall time at the front of a sort key; 48 bits is records.WALL_MS_MAX.
WALL_BYTES = 6
_LEAF_PERSON = b"gossipnode-leaf"
_TOMBSTONE_MARK = b"\x00"
_VALUE_MARK = b"\x01"
# Length-prefixed dataset names, by name: a handful of entries, computed once each.
_DATASET_PREFIXES: dict[str, bytes] = {}


def sort_key(record: Record) -> bytes:
    """The item's place in the order: (version.wall_ms, key)."""
    return record.version.wall_ms.to_bytes(WALL_BYTES, "big") + record.key.encode()


def leaf_digest(record: Record) -> int:
    """BLAKE2b-128 of (dataset, key, version, value hash), as an integer.

    Hashed input: length-prefixed dataset and key, wall_ms (8 bytes), counter (4), origin
    (32), then 0x00 for a tombstone or 0x01 and BLAKE2b-256 of the value."""
    prefix = _DATASET_PREFIXES.get(record.dataset)
    if prefix is None:
        name = record.dataset.encode()
        prefix = _DATASET_PREFIXES[record.dataset] = len(name).to_bytes(4, "big") + name
    key = record.key.encode()
    version = record.version
    value = record.value
    if value is None:
        tail = _TOMBSTONE_MARK
    else:
        tail = _VALUE_MARK + hashlib.blake2b(value, digest_size=32).digest()
    data = b"".join(
        (
            prefix,
            len(key).to_bytes(4, "big"),
            key,
            version.wall_ms.to_bytes(8, "big"),
            version.counter.to_bytes(4, "big"),
            version.origin,
            tail,
        )
    )
    digest = hashlib.blake2b(data, digest_size=LEAF_BYTES, person=_LEAF_PERSON).digest()
    return int.from_bytes(digest, "big")


def separator(before: bytes, after: bytes) -> bytes:
    """The shortest prefix `p` of `after` with before < p <= after (needs before < after)."""
    assert before < after
    common = 0
    limit = min(len(before), len(after))
    while common < limit and before[common] == after[common]:
        common += 1
    return after[: common + 1]
