"""Membership statements and messages.

Rules:
1. A statement is what one member says about one member (its subject):
   - `Alive` and `Left` are said by the subject itself and carry its Ed25519 signature over
     the bytes signing.py defines. Nobody else can make one, so no member can change
     another's name, address or tags, or announce that another left.
   - `Suspect` and `Dead` are assertions by others (the `reporter`), unsigned, that follow
     SWIM's incarnation rules: the subject refutes them with a higher-incarnation `Alive`.
2. Messages are frozen dataclasses whose fields are int, str, bytes, bool, tuples of those,
   or other such dataclasses, so the wire layer encodes them generically by type hints.
   Tags travel as `tuple[tuple[str, str], ...]` sorted by key; addresses as host and port.
3. `Updates` is a batch of statements: piggybacked on every probe message (bounded by
   `gossip_message_bytes_max`, estimated by `statement_size_bytes`) or the full state of a
   push-pull (bounded by `members_max`).
4. `Ping`, `Ack` and `PushPull` may carry the sender's own digest roots (`DatasetRoot`,
   roots.py says when): first-hand only, so they need no signature.
5. Nothing received is applied before its shape is checked (checks.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ...config import MEMBERS_MAX_LIMIT
from ..schema import Limit

__all__ = [
    "Ack",
    "Alive",
    "DatasetRoot",
    "Dead",
    "Gossip",
    "Left",
    "Nack",
    "Ping",
    "PingRequest",
    "PushPull",
    "Suspect",
    "Updates",
    "statement_size_bytes",
]

# Incarnations are persisted and compared as unsigned 64-bit numbers.
INCARNATION_MAX = 2**64 - 1
# Per-field overhead in the size estimate: a CBOR key (the field name, <= 24 bytes) plus a
# head; generous, so that the estimate stays above the real encoded size.
FIELD_OVERHEAD_BYTES = 24
# A digest root is advertised as its first ROOT_BYTES bytes: two different datasets look
# equal with odds of 2**-64, for 8 bytes per dataset instead of 16.
ROOT_BYTES = 8

Tags = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Alive:
    """The subject is alive at `incarnation` with this name, address and tags (signed)."""

    node_id: bytes
    name: str
    host: str
    port: int
    incarnation: int
    tags: Tags
    signature: bytes


@dataclass(frozen=True, slots=True)
class Left:
    """The subject left the cluster gracefully at `incarnation` (signed by the subject)."""

    node_id: bytes
    incarnation: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class Suspect:
    """`reporter` suspects the subject at `incarnation` (it missed a probe)."""

    node_id: bytes
    incarnation: int
    reporter: bytes


@dataclass(frozen=True, slots=True)
class Dead:
    """`reporter` declares the subject dead at `incarnation` (its suspicion timed out)."""

    node_id: bytes
    incarnation: int
    reporter: bytes


@dataclass(frozen=True, slots=True)
class Updates:
    """A batch of statements. Applied in the order alive, left, dead, suspect. An honest
    sender puts at most one statement per member in each list, so at most MEMBERS_MAX_LIMIT:
    the wire refuses a longer one by its declared length, before it decodes any statement
    of it. A receiver does not count on one per member: a repeat costs what any statement
    costs, within the batch's bound (checks.py `statements_max`), and confirms a suspicion
    at most once (state.py rule 2)."""

    alive: Annotated[tuple[Alive, ...], Limit(MEMBERS_MAX_LIMIT)] = ()
    left: Annotated[tuple[Left, ...], Limit(MEMBERS_MAX_LIMIT)] = ()
    dead: Annotated[tuple[Dead, ...], Limit(MEMBERS_MAX_LIMIT)] = ()
    suspect: Annotated[tuple[Suspect, ...], Limit(MEMBERS_MAX_LIMIT)] = ()

    def __len__(self) -> int:
        return len(self.alive) + len(self.left) + len(self.dead) + len(self.suspect)


@dataclass(frozen=True, slots=True)
class DatasetRoot:
    """The sender's digest root of one dataset (its first ROOT_BYTES bytes), and how long
    ago, in milliseconds of the sender's monotonic clock, that root became the sender's."""

    dataset: str
    root: bytes
    age_ms: int


Roots = tuple[DatasetRoot, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    """Are you alive? `target` is the node id the sender means (a stale address is ignored).
    The ack goes to (reply_host, reply_port), so that a member not yet known can answer."""

    sequence: int
    target: bytes
    reply_host: str
    reply_port: int
    updates: Updates
    roots: Roots = ()  # the sender's own, when the target is owed them (roots.py)


@dataclass(frozen=True, slots=True)
class Ack:
    """Answer to `Ping` number `sequence`; a relay forwards it to the requester (with its
    own roots, never the target's)."""

    sequence: int
    updates: Updates
    roots: Roots = ()


@dataclass(frozen=True, slots=True)
class PingRequest:
    """Please probe `target` at (target_host, target_port) for me; answer Ack or Nack to
    (reply_host, reply_port)."""

    sequence: int
    target: bytes
    target_host: str
    target_port: int
    reply_host: str
    reply_port: int
    updates: Updates


@dataclass(frozen=True, slots=True)
class Nack:
    """The relay got no ack from the target in time (Lifeguard: the relay itself is fine)."""

    sequence: int


@dataclass(frozen=True, slots=True)
class Gossip:
    """Updates with no probe to ride on (sent every gossip interval while any are queued)."""

    updates: Updates


@dataclass(frozen=True, slots=True)
class PushPull:
    """A state exchange (exchange.py). `reply_wanted`: answer with yours (join, periodic
    sync). `state`: statements; `salt` and `have`: the sender's summary, one
    8-byte digest per member it holds (empty: no summary, answer with the
    full state); `wanted`: digests of the peer's summary whose statements we lack."""

    reply_wanted: bool
    state: Updates
    roots: Roots = ()
    salt: bytes = b""
    have: bytes = b""
    wanted: bytes = b""



def statement_size_bytes(statement: Alive | Left | Suspect | Dead) -> int:
    """An estimate, on the high side, of a statement's encoded size in a message."""
    if isinstance(statement, Alive):
        tags = sum(len(k.encode()) + len(v.encode()) + 6 for k, v in statement.tags)
        return (
            len(statement.node_id)
            + len(statement.name.encode())
            + len(statement.host.encode())
            + len(statement.signature)
            + tags
            + 9 * 2
            + 7 * FIELD_OVERHEAD_BYTES
        )
    if isinstance(statement, Left):
        return len(statement.node_id) + len(statement.signature) + 9 + 3 * FIELD_OVERHEAD_BYTES
    return len(statement.node_id) + len(statement.reporter) + 9 + 3 * FIELD_OVERHEAD_BYTES
