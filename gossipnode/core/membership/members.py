"""Members as the rest of the node sees them, and the tags every member advertises.

A member is identified by its node id (its Ed25519 public key) and carries a name, an
address, an incarnation, a state and tags. States:
- alive:   answering probes, or said so itself more recently than anyone doubted it;
- suspect: someone missed its probe; it has a suspicion timeout to refute (Lifeguard);
- dead:    the suspicion timed out; reaped after `reap_after_s` unless it comes back;
- left:    it said (signed) that it left; reaped after `reap_after_s` like the dead.

Tags are strings; booleans are "true" / "false". Known tags: `wep` (runs the Web Email
Protection service), `private_keys` (accepts internal users' private keys), `version`
(software and protocol version).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ...config import TagsConfig
from ..events import Address
from ..placement import tag_enabled
from ..text import escape_text
from .messages import Alive, Left, Tags
from .suspicion import Suspicion

__all__ = [
    "ALIVE",
    "DEAD",
    "LEFT",
    "PENDING",
    "SUSPECT",
    "Member",
    "escape_text",
    "tags_from_config",
    "tags_private_keys",
    "tags_wep",
]

ALIVE = "alive"
SUSPECT = "suspect"
DEAD = "dead"
LEFT = "left"
STATES = (ALIVE, SUSPECT, DEAD, LEFT)
# Not in MemberChanged.state of a member (STATES), but of one set aside: the admission
# predicate no longer admits it, and it waits in the pending set (swim.py).
PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Member:
    """A snapshot of one member (it does not change when the membership does)."""

    node_id: bytes
    name: str
    address: Address
    incarnation: int
    state: str  # ALIVE | SUSPECT | DEAD | LEFT
    tags: Mapping[str, str]
    state_changed_at: float  # `now` when `state` last changed, in the core's time base


def tags_wep(tags: Mapping[str, str]) -> bool:
    """The member runs the Web Email Protection service."""
    return tag_enabled(tags, "wep")


def tags_private_keys(tags: Mapping[str, str]) -> bool:
    """The member opts in to holding internal users' private keys."""
    return tag_enabled(tags, "private_keys")


def tags_from_config(config: TagsConfig, version: str) -> dict[str, str]:
    """The tags a node advertises: its `[tags]` section plus its software version."""
    return {
        "private_keys": "true" if config.private_keys else "false",
        "version": version,
        "wep": "true" if config.wep else "false",
    }


class Entry:
    """What one core knows of one member (mutable; only `Membership` changes it).

    `alive` is the latest signed alive statement (forwarded in push-pull, so that receivers
    can check it), `left` the signed left statement once there is one.
    """

    __slots__ = (
        "alive",
        "incarnation",
        "left",
        "node_id",
        "notified_at",
        "roots",
        "roots_heard_at",
        "roots_sent",
        "state",
        "state_changed_at",
        "suspicion",
    )

    def __init__(self, alive: Alive, now: float) -> None:
        self.node_id = alive.node_id
        self.alive = alive
        self.incarnation = alive.incarnation
        self.state = ALIVE
        self.state_changed_at = now
        self.left: Left | None = None
        self.suspicion: Suspicion | None = None
        # When we last told this member that we suspect it or hold it dead.
        self.notified_at: float | None = None
        # Its digest roots as it advertised them (roots.py): dataset -> (root, since when,
        # on our clock), when they last arrived, and ((version, datasets), when) we last sent it
        # ours (roots.py rule 1).
        self.roots: dict[str, tuple[bytes, float]] = {}
        self.roots_heard_at: float | None = None
        self.roots_sent: tuple[tuple[int, tuple[str, ...]], float] | None = None

    @property
    def address(self) -> Address:
        return (self.alive.host, self.alive.port)

    @property
    def tags(self) -> Tags:
        return self.alive.tags

    def set_state(self, state: str, now: float) -> None:
        if state != self.state:
            self.state = state
            self.state_changed_at = now
        if state != SUSPECT:
            self.suspicion = None

    def snapshot(self) -> Member:
        return Member(
            node_id=self.node_id,
            name=self.alive.name,
            address=self.address,
            incarnation=self.incarnation,
            state=self.state,
            tags=MappingProxyType(dict(self.alive.tags)),
            state_changed_at=self.state_changed_at,
        )
