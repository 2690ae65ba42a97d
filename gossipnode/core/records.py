"""Records, versions and the last-writer-wins rule (docs/architecture.md).

Rules:
1. A record is (dataset, key, value, version). `value` is the canonical CBOR encoding of a
   map, kept as bytes: the core hashes and compares bytes and never decodes them (decoding
   and checking that a value is a map happen at the edges, in `wire.values`). `value is
   None` marks a tombstone, the record of a delete.
2. A version is a hybrid logical clock stamp (wall_ms, counter) with the origin node id as
   tie-break. Versions are totally ordered, the same way on every node.
3. `signature` is None for ordinary records. A record of a signed dataset (administrative
   records, private keys: core/authority.py) carries the Ed25519 signature of the key
   `version.origin` over (dataset, key, version, value digest). It is not part of the
   record's rank or digest: a correct record has one signature, and a wrong one is refused
   before it is stored.
4. `wins` keeps the record with the higher (version, live, value) triple. The value only
   breaks ties between two records that claim the very same version, which a correct node
   never writes, so that even then every replica picks the same winner whatever order the
   records arrive in (the store applies them with `wins`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import LimitsConfig
from .catalog import dataset as lookup_dataset
from .errors import LocalProtocolError

__all__ = ["NODE_ID_BYTES", "Record", "Version", "check_record", "wins"]

# Node ids are Ed25519 public keys.
NODE_ID_BYTES = 32
# The HLC counter orders stamps within one millisecond; 2**32 is far beyond any write rate.
COUNTER_MAX = 2**32 - 1
# Wall time in ms fits 48 bits until the year 10889.
WALL_MS_MAX = 2**48 - 1


@dataclass(frozen=True, slots=True, order=True)
class Version:
    wall_ms: int
    counter: int
    origin: bytes

    def __post_init__(self) -> None:
        assert 0 <= self.wall_ms <= WALL_MS_MAX, self.wall_ms
        assert 0 <= self.counter <= COUNTER_MAX, self.counter
        assert len(self.origin) == NODE_ID_BYTES, len(self.origin)


@dataclass(frozen=True, slots=True)
class Record:
    dataset: str
    key: str
    value: bytes | None
    version: Version
    signature: bytes | None = None

    @property
    def tombstone(self) -> bool:
        return self.value is None

    @property
    def size_bytes(self) -> int:
        """What counts against `limits.record_bytes_max`: key plus value bytes."""
        return len(self.key.encode()) + (len(self.value) if self.value is not None else 0)

    def _rank(self) -> tuple[Version, bool, bytes]:
        return (self.version, self.value is not None, self.value or b"")


def wins(candidate: Record, current: Record | None) -> bool:
    """True when `candidate` must replace `current` (the same dataset and key)."""
    if current is None:
        return True
    assert candidate.dataset == current.dataset and candidate.key == current.key
    return candidate._rank() > current._rank()


def check_record(record: Record, limits: LimitsConfig) -> None:
    """Check a record against the catalog and the limits.

    Raises:
        LocalProtocolError: unknown dataset, bad key, or a value over the size limit. The
            callers that take records from peers turn this into a RemoteProtocolError.
    """
    lookup_dataset(record.dataset)
    check_key(record.key, limits)
    if record.value is not None:
        if not isinstance(record.value, bytes):
            raise LocalProtocolError("a record value must be encoded bytes")
        if record.size_bytes > limits.record_bytes_max:
            raise LocalProtocolError(
                f"record {record.dataset}/{record.key} is {record.size_bytes} bytes, over the "
                f"limit of {limits.record_bytes_max} bytes (limits.record_bytes_max)"
            )


def check_key(key: str, limits: LimitsConfig) -> None:
    if not isinstance(key, str) or not key:
        raise LocalProtocolError("a record key must be a non-empty string")
    if not key.isprintable():
        raise LocalProtocolError(f"record key {key!r} contains control characters")
    size = len(key.encode())
    if size > limits.key_bytes_max:
        raise LocalProtocolError(
            f"record key is {size} bytes, over the limit of {limits.key_bytes_max} bytes "
            "(limits.key_bytes_max)"
        )
