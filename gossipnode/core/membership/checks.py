"""The shape of what membership accepts: received statements and roots, and our own name
and tags.

Rules:
1. `check_message` checks the shape of a received message, and `check_updates` that of its
   batch of statements, before anything is applied, so that a malformed message changes
   nothing (RemoteProtocolError). Signatures are not checked here: only when a statement
   would change something (verified.py). An alive statement equal to the one we hold of
   its member (`held`), field types included, passed these checks when we took it: it is
   not checked again (gossip repeats each statement a dozen times, and a full state
   repeats every statement we hold; checking them again was a tenth of a simulation).
2. `check_roots` bounds and checks a received root advertisement before anything of it is
   applied.
3. Names and tags follow the same rules whether they are ours (LocalProtocolError) or a
   peer's (RemoteProtocolError), so that they can be written into logs and tables as they
   are.
"""

from __future__ import annotations

from collections.abc import Callable

from ...config import MembershipConfig
from ..errors import LocalProtocolError, RemoteProtocolError
from ..records import NODE_ID_BYTES
from .exchange import check_summary
from .messages import (
    INCARNATION_MAX,
    ROOT_BYTES,
    Ack,
    Alive,
    DatasetRoot,
    Dead,
    Gossip,
    Left,
    Nack,
    Ping,
    PingRequest,
    PushPull,
    Suspect,
    Tags,
    Updates,
)

__all__ = [
    "check_address",
    "check_message",
    "check_name",
    "check_roots",
    "check_tags",
    "check_updates",
    "tags_tuple",
]

# A piggybacked batch holds at most this many statements: the smallest statement is
# estimated above 64 bytes, so an honest batch within gossip_message_bytes_max never hits it.
STATEMENT_BYTES_MIN = 64
# Ed25519 detached signatures.
SIGNATURE_BYTES = 64
# Member names: config allows 64 printable characters without spaces.
NAME_CHARS_MAX = 64
# A DNS name is at most 253 bytes; an IPv6 literal far less.
HOST_BYTES_MAX = 255
# Datasets one advertisement names at most: the catalog replicates 9; room for more, and a
# bound on what a peer can make us keep per member (32 x ~90 bytes).
ROOTS_MAX = 32
# A dataset name in an advertisement (catalog names are short identifiers).
DATASET_NAME_BYTES_MAX = 64
# How old a root may say it is: about 35 years in milliseconds. More is a lie, and would
# place the change before any clock we run on.
ROOT_AGE_MS_MAX = 2**40


def check_name(name: object, error: type[Exception]) -> None:
    """A member name is 1 to NAME_CHARS_MAX printable characters without whitespace (what
    the config accepts), so that it can be written into logs and tables as it is."""
    # `name.split() == [name]`: no character of it is whitespace (str.split splits at
    # exactly the characters str.isspace calls whitespace), without a loop in Python.
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= NAME_CHARS_MAX
        or not name.isprintable()
        or name.split() != [name]
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
            or not isinstance(pair[0], str)
            or not isinstance(pair[1], str)
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


def _nothing_held(node_id: bytes) -> Alive | None:
    return None


def _same_as_held(alive: Alive, held: Callable[[bytes], Alive | None]) -> bool:
    """Is `alive` the statement we hold (rule 1)? Equal and of the same field types: `==`
    alone takes 1 == 1.0 == True and bytearray == bytes."""
    node_id = alive.node_id
    if type(node_id) is not bytes:
        return False
    ours = held(node_id)
    if ours is alive:  # the very statement we took, checked then (a shared decoding)
        return True
    return (ours is not None and ours == alive and type(alive.incarnation) is int
            and type(alive.port) is int and type(alive.signature) is bytes
            and type(alive.name) is str and type(alive.host) is str
            and type(alive.tags) is tuple)


def check_updates(updates: object, config: MembershipConfig, statements_max: int,
                  held: Callable[[bytes], Alive | None] = _nothing_held) -> None:
    """Check a received batch's shape (not its signatures: those are checked when a statement
    would change something). `held(node_id)`: the alive statement we hold of that member,
    already checked (rule 1).

    Raises:
        RemoteProtocolError: not an `Updates`, more than `statements_max` statements, or a
            malformed statement.
    """
    if not isinstance(updates, Updates):
        raise RemoteProtocolError("updates must be an Updates batch")
    # (Four isinstance calls rather than a generator over them: once per message received.)
    if not (isinstance(updates.alive, tuple) and isinstance(updates.left, tuple)
            and isinstance(updates.dead, tuple) and isinstance(updates.suspect, tuple)):
        raise RemoteProtocolError("update lists must be tuples")
    if len(updates) > statements_max:
        raise RemoteProtocolError(
            f"{len(updates)} statements in one message, over the limit of {statements_max}"
        )
    for alive in updates.alive:
        if not isinstance(alive, Alive):
            raise RemoteProtocolError("an alive statement of the wrong type")
        if _same_as_held(alive, held):
            continue
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


def check_message(message: object, config: MembershipConfig,
                  held: Callable[[bytes], Alive | None] = _nothing_held) -> None:
    """Raises RemoteProtocolError unless `message` is a well-formed membership message.
    `held`: as for `check_updates`."""
    if isinstance(message, Ping | Ack | PingRequest | Gossip):
        batch_max = config.gossip_message_bytes_max // STATEMENT_BYTES_MIN
        check_updates(message.updates, config, batch_max, held)
    elif isinstance(message, PushPull):
        check_updates(message.state, config, 4 * config.members_max, held)
        if type(message.reply_wanted) is not bool:
            raise RemoteProtocolError("reply_wanted must be a boolean")
        check_summary(message, config.members_max)
    elif not isinstance(message, Nack):
        raise RemoteProtocolError(f"not a membership message: {type(message).__name__}")
    if isinstance(message, Ping | Ack | PushPull):
        check_roots(message.roots)
    sequenced = isinstance(message, Ping | Ack | PingRequest | Nack)
    if sequenced and type(message.sequence) is not int:
        raise RemoteProtocolError("a sequence number must be an integer")
    if isinstance(message, Ping | PingRequest):
        check_address(message.reply_host, message.reply_port)
        if not isinstance(message.target, bytes) or len(message.target) != NODE_ID_BYTES:
            raise RemoteProtocolError(f"a target is a {NODE_ID_BYTES}-byte node id")
    if isinstance(message, PingRequest):
        check_address(message.target_host, message.target_port)
