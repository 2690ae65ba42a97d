"""What the core asks of its driver (the Trio shell or the simulator), and what it reports.

Commands are imperatives (`Send`, `Disconnect`); facts are past tense (`MemberChanged`,
`RecordsPurged`, `SyncCompleted`). All are frozen dataclasses. The driver drains them with
`NodeCore.events()` after every input and carries them out in order.

Addressing: peers are reached by network address (`Address`, a (host, port) pair), because a
joining node knows only its seeds' addresses. Inputs arrive tagged with the sender's node id
as proven by the secure channel's handshake, so the core never trusts an id a message claims.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Address",
    "Disconnect",
    "Event",
    "MemberChanged",
    "PeerRefused",
    "RecordsPurged",
    "Send",
    "SyncCompleted",
]

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Send:
    """Deliver `message` to the node at `to` (dial it first if no channel is open).

    `peer` is the node id the message is meant for, when known: the driver must deliver it
    only over a channel whose handshake proved that id, so a record never reaches whatever
    other node now answers at that address."""

    to: Address
    message: object
    peer: bytes | None = None


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close every connection with this node, both directions: the one we dialled (at
    `to`) and any it opened to us (proven to be `peer`). It misbehaved, or its queue
    overflowed. `to` is None for a node not (yet) in the member list; `peer` is None only
    when the node id is unknown."""

    to: Address | None
    reason: str
    peer: bytes | None = None


@dataclass(frozen=True, slots=True)
class MemberChanged:
    """A member's state, address or tags changed."""

    node_id: bytes
    name: str
    address: Address
    state: str  # membership.ALIVE | SUSPECT | DEAD | LEFT
    incarnation: int
    # The member's tags as (key, value) pairs sorted by key; booleans are "true"/"false".
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RecordsPurged:
    """Records removed without tombstones (eligibility lost, mailbox moved, GC)."""

    dataset: str
    keys: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class PeerRefused:
    """A peer sent something we refuse (a record it may not send us, a bad message)."""

    peer: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class SyncCompleted:
    """A reconciliation session with `peer` over `dataset` ended: completed when `failure`
    is None, else failed or abandoned for that reason. Sent once per session, on both sides;
    `received` and `sent` count the records it moved."""

    peer: bytes
    dataset: str
    session: int
    initiated: bool  # this node opened it
    received: int
    sent: int
    failure: str | None = None


Event = Send | Disconnect | MemberChanged | RecordsPurged | PeerRefused | SyncCompleted
