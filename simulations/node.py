"""One simulated node: its identity, configuration, store, clock skew and lifecycle state.

A `SimNode` outlives its cores: a crash drops `core` and keeps everything else (above all
the store, the durable part), and a restart puts a new core in its place.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gossipnode.config import NodeConfig, TagsConfig
from gossipnode.core.events import Address
from gossipnode.core.records import Record

from .tracked_store import TrackedStore

__all__ = ["PORT", "SEED_NODES", "SYNC_S", "PendingWrite", "SimNode", "default_tags",
           "sign_function", "tag_map", "verify"]

# Seeds every node is configured to join: a few, as an operator would list.
SEED_NODES = 3
PORT = 7946
SIGNATURE_BYTES = 64
# One disk sync of a group commit: an fsync on a server SSD takes a few milliseconds.
# Writes that arrive while a sync runs wait for the next batch.
SYNC_S = 0.002


def default_tags(index: int) -> TagsConfig:
    """A mixed cluster: every third node runs WEP, every fifth declines private keys."""
    return TagsConfig(wep=index % 3 == 0, private_keys=index % 5 != 4)


def tag_map(tags: TagsConfig) -> dict[str, str]:
    return {"private_keys": "true" if tags.private_keys else "false",
            "wep": "true" if tags.wep else "false"}


# Signatures in the simulation are keyed hashes under the signer's node id: deterministic
# and cheap. They prove nothing against an adversary (the id is public), which the
# simulator does not model; the real Ed25519 identity is tested elsewhere.
def sign_function(node_id: bytes) -> Callable[[bytes], bytes]:
    def sign(data: bytes) -> bytes:
        return hashlib.blake2b(data, key=node_id, digest_size=SIGNATURE_BYTES).digest()
    return sign


def verify(node_id: bytes, data: bytes, signature: bytes) -> bool:
    expected = hashlib.blake2b(data, key=node_id, digest_size=SIGNATURE_BYTES).digest()
    return signature == expected


@dataclass(slots=True, eq=False)
class SimNode:
    index: int
    name: str
    node_id: bytes
    address: Address
    config: NodeConfig
    store: TrackedStore
    rng: random.Random
    tags: dict[str, str]  # ground truth: what this node is configured to advertise
    created_at: float
    tags_changed_at: float | None = None  # None: as configured when the node was created
    started_at: float = 0.0  # virtual time of the latest start or restart
    core: Any = None
    incarnation: int = 1
    skew_s: float = 0.0
    left: bool = False
    crashed_at: float | None = None
    timer_at: float | None = None
    timer_token: int = 0
    # Bumped at every crash, so that messages in flight to or from the old process die.
    epoch: int = 0
    last_timer_at: float = 0.0
    timer_spins: int = 0
    # Group commit (gossipnode/driving.py): client writes waiting for the next batch, and
    # whether a batch is being synced now.
    writes: list[PendingWrite] = field(default_factory=list)
    committing: bool = False
    sync_s: float = SYNC_S


@dataclass(slots=True, eq=False)
class PendingWrite:
    """A client write in a node's group-commit queue, and its outcome once committed:
    `record` when acknowledged, `error` (the reason) when refused."""

    dataset: str
    key: str
    value: bytes | None
    record: Record | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.record is not None or self.error is not None
