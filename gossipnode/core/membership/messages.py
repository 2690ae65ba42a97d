"""Membership statements and messages, and the bytes a member signs.

Rules:
1. A statement is what one member says about one member (its subject):
   - `Alive` and `Left` are said by the subject itself and carry its Ed25519 signature over
     `alive_signed_bytes` / `left_signed_bytes`. Nobody else can make one, so no member can
     change another's name, address or tags, or announce that another left.
   - `Suspect` and `Dead` are assertions by others (the `reporter`), unsigned, that follow
     SWIM's incarnation rules: the subject refutes them with a higher-incarnation `Alive`.
2. Messages are frozen dataclasses whose fields are int, str, bytes, bool, tuples of those,
   or other such dataclasses, so the wire layer encodes them generically by type hints.
   Tags travel as `tuple[tuple[str, str], ...]` sorted by key; addresses as host and port.
3. `Updates` is a batch of statements: piggybacked on every probe message (bounded by
   `gossip_message_bytes_max`) or the full state of a push-pull (bounded by `members_max`).
4. `check_updates` checks the shape of a received batch before anything is applied, so
   that a malformed message changes nothing (RemoteProtocolError).
5. `Ping`, `Ack` and `PushPull` may carry the sender's own digest roots (`DatasetRoot`,
   roots.py says when): first-hand only, so they need no signature; `check_roots` bounds
   and checks them before anything is applied.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Annotated

from ...config import MEMBERS_MAX_LIMIT, MembershipConfig
from ..errors import LocalProtocolError, RemoteProtocolError
from ..records import NODE_ID_BYTES
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
    "alive_signed_bytes",
    "check_address",
    "check_name",
    "check_roots",
    "check_tags",
    "check_updates",
    "left_signed_bytes",
    "statement_size_bytes",
]

# Ed25519 detached signatures.
SIGNATURE_BYTES = 64
# Member names: config allows 64 printable characters without spaces.
NAME_CHARS_MAX = 64
# A DNS name is at most 253 bytes; an IPv6 literal far less.
HOST_BYTES_MAX = 255
# Incarnations are persisted and compared as unsigned 64-bit numbers.
INCARNATION_MAX = 2**64 - 1
# Domain separation: a signature over one kind of statement never verifies as another kind
# or as anything else the identity key signs.
ALIVE_DOMAIN = b"gossipnode/membership/alive/v1\x00"
LEFT_DOMAIN = b"gossipnode/membership/left/v1\x00"
# Per-field overhead in the size estimate: a CBOR key (the field name, <= 24 bytes) plus a
# head; generous, so that the estimate stays above the real encoded size.
FIELD_OVERHEAD_BYTES = 24

# A digest root is advertised as its first ROOT_BYTES bytes: two different datasets look
# equal with odds of 2**-64, for 8 bytes per dataset instead of 16.
ROOT_BYTES = 8
# Datasets one advertisement names at most: the catalog replicates 9; room for more, and a
# bound on what a peer can make us keep per member (32 x ~90 bytes).
ROOTS_MAX = 32
# A dataset name in an advertisement (catalog names are short identifiers).
DATASET_NAME_BYTES_MAX = 64
# How old a root may say it is: about 35 years in milliseconds. More is a lie, and would
# place the change before any clock we run on.
ROOT_AGE_MS_MAX = 2**40

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
    """A batch of statements. Applied in the order alive, left, dead, suspect. Each list
    holds at most one statement per member, so at most MEMBERS_MAX_LIMIT: the wire refuses
    a longer one by its declared length, before it decodes any statement of it."""

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


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _tags_bytes(tags: Tags) -> bytes:
    return struct.pack(">I", len(tags)) + b"".join(
        _field(key.encode()) + _field(value.encode()) for key, value in tags
    )


def alive_signed_bytes(
    node_id: bytes, name: str, host: str, port: int, incarnation: int, tags: Tags
) -> bytes:
    """The canonical bytes an `Alive` signature covers: a domain prefix, then each field
    length-prefixed (4-byte big-endian), integers as 8-byte big-endian."""
    return b"".join(
        (
            ALIVE_DOMAIN,
            _field(node_id),
            _field(name.encode()),
            _field(host.encode()),
            struct.pack(">QQ", port, incarnation),
            _tags_bytes(tags),
        )
    )


def left_signed_bytes(node_id: bytes, incarnation: int) -> bytes:
    """The canonical bytes a `Left` signature covers."""
    return LEFT_DOMAIN + _field(node_id) + struct.pack(">Q", incarnation)


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


def check_name(name: object, error: type[Exception]) -> None:
    """A member name is 1 to NAME_CHARS_MAX printable characters without whitespace (what
    the config accepts), so that it can be written into logs and tables as it is."""
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= NAME_CHARS_MAX
        or not name.isprintable()
        or any(character.isspace() for character in name)
    ):
        raise error(
            f"a member name must be 1 to {NAME_CHARS_MAX} printable characters without spaces"
        )


def check_tags(tags: Tags, tags_bytes_max: int, error: type[Exception]) -> None:
    """Tags are string pairs, sorted by unique key, within `tags_bytes_max`; keys are
    non-empty, and keys and values printable (no control characters), so that they can be
    written into logs and tables as they are."""
    if not isinstance(tags, tuple):
        raise error("tags must be a tuple of (key, value) pairs")
    size = 0
    previous = None
    for pair in tags:
        if (
            not isinstance(pair, tuple)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise error("each tag must be a (key, value) pair of strings")
        if not pair[0] or not pair[0].isprintable() or not pair[1].isprintable():
            raise error("tag keys and values must be printable (no control characters)")
        if previous is not None and pair[0] <= previous:
            raise error("tags must be sorted by key, each key once")
        previous = pair[0]
        size += len(pair[0].encode()) + len(pair[1].encode())
    if size > tags_bytes_max:
        raise error(
            f"tags are {size} bytes, over the limit of {tags_bytes_max} bytes "
            "(membership.tags_bytes_max)"
        )


def _check_id(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != NODE_ID_BYTES:
        raise RemoteProtocolError(f"{what} must be {NODE_ID_BYTES} bytes")


def _check_incarnation(value: object) -> None:
    if type(value) is not int or not 0 <= value <= INCARNATION_MAX:
        raise RemoteProtocolError("incarnation must be an unsigned 64-bit integer")


def check_address(host: object, port: object) -> None:
    """Raises RemoteProtocolError unless (host, port) is a plausible address."""
    if not isinstance(host, str) or not 0 < len(host.encode()) <= HOST_BYTES_MAX:
        raise RemoteProtocolError("bad host")
    if type(port) is not int or not 0 < port < 65536:
        raise RemoteProtocolError("bad port")


def check_updates(updates: object, config: MembershipConfig, statements_max: int) -> None:
    """Check a received batch's shape (not its signatures: those are checked when a statement
    would change something).

    Raises:
        RemoteProtocolError: not an `Updates`, more than `statements_max` statements, or a
            malformed statement.
    """
    if not isinstance(updates, Updates):
        raise RemoteProtocolError("updates must be an Updates batch")
    parts = (updates.alive, updates.left, updates.dead, updates.suspect)
    if not all(isinstance(part, tuple) for part in parts):
        raise RemoteProtocolError("update lists must be tuples")
    if len(updates) > statements_max:
        raise RemoteProtocolError(
            f"{len(updates)} statements in one message, over the limit of {statements_max}"
        )
    for alive in updates.alive:
        if not isinstance(alive, Alive):
            raise RemoteProtocolError("an alive statement of the wrong type")
        _check_id(alive.node_id, "node id")
        _check_incarnation(alive.incarnation)
        check_name(alive.name, RemoteProtocolError)
        check_address(alive.host, alive.port)
        if not isinstance(alive.signature, bytes) or len(alive.signature) != SIGNATURE_BYTES:
            raise RemoteProtocolError("bad signature length")
        check_tags(alive.tags, config.tags_bytes_max, RemoteProtocolError)
    for left in updates.left:
        if not isinstance(left, Left):
            raise RemoteProtocolError("a left statement of the wrong type")
        _check_id(left.node_id, "node id")
        _check_incarnation(left.incarnation)
        if not isinstance(left.signature, bytes) or len(left.signature) != SIGNATURE_BYTES:
            raise RemoteProtocolError("bad signature length")
    for kind, statements in ((Dead, updates.dead), (Suspect, updates.suspect)):
        for statement in statements:
            if not isinstance(statement, kind):
                raise RemoteProtocolError(f"a {kind.__name__} statement of the wrong type")
            _check_id(statement.node_id, "node id")
            _check_id(statement.reporter, "reporter id")
            _check_incarnation(statement.incarnation)


def check_roots(roots: object) -> None:
    """Check a received advertisement's shape: at most ROOTS_MAX entries, sorted by unique
    dataset name, each name printable, each root ROOT_BYTES long, each age in range.

    Raises:
        RemoteProtocolError: anything else; nothing of it was applied.
    """
    if not isinstance(roots, tuple):
        raise RemoteProtocolError("roots must be a tuple")
    if len(roots) > ROOTS_MAX:
        raise RemoteProtocolError(f"{len(roots)} roots in one message, over the limit of "
                                  f"{ROOTS_MAX}")
    previous = None
    for entry in roots:
        if not isinstance(entry, DatasetRoot):
            raise RemoteProtocolError("a root of the wrong type")
        name = entry.dataset
        if (not isinstance(name, str) or not name or not name.isprintable()
                or len(name.encode()) > DATASET_NAME_BYTES_MAX):
            raise RemoteProtocolError(f"a dataset name is 1 to {DATASET_NAME_BYTES_MAX} "
                                      "printable bytes")
        if previous is not None and name <= previous:
            raise RemoteProtocolError("roots must be sorted by dataset, each dataset once")
        previous = name
        if not isinstance(entry.root, bytes) or len(entry.root) != ROOT_BYTES:
            raise RemoteProtocolError(f"a root is {ROOT_BYTES} bytes")
        if type(entry.age_ms) is not int or not 0 <= entry.age_ms <= ROOT_AGE_MS_MAX:
            raise RemoteProtocolError("a root's age is out of range")


def tags_tuple(tags: object) -> Tags:
    """Our own tags (a mapping of str to str) as the sorted pairs that travel.

    Raises:
        LocalProtocolError: not a mapping of strings.
    """
    items = getattr(tags, "items", None)
    if items is None:
        raise LocalProtocolError("tags must be a mapping of str to str")
    pairs = tuple(sorted(items()))
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs):
        raise LocalProtocolError("tag keys and values must be strings")
    return pairs
