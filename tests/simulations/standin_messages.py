"""The stand-in core's messages: frozen dataclasses of simple fields, as core messages are."""

from __future__ import annotations

from dataclasses import dataclass

from gossipnode.core.events import Address
from gossipnode.core.records import Record
from gossipnode.wire.messages import MessageRegistry

__all__ = [
    "STANDIN_MESSAGES",
    "Gossip",
    "Hello",
    "KeyHandoff",
    "KeyHandoffDone",
    "MailboxSync",
    "Member",
    "MemberInfo",
    "MemberList",
    "Push",
    "SyncDigest",
    "SyncRecords",
]


@dataclass(frozen=True, slots=True)
class MemberInfo:
    node_id: bytes
    name: str
    host: str
    port: int
    incarnation: int
    tags: tuple[str, ...]  # "name=value"
    state: str


@dataclass(frozen=True, slots=True)
class Hello:
    member: MemberInfo


@dataclass(frozen=True, slots=True)
class MemberList:
    members: tuple[MemberInfo, ...]
    reply: bool


@dataclass(frozen=True, slots=True)
class Gossip:
    updates: tuple[MemberInfo, ...]


@dataclass(frozen=True, slots=True)
class Push:
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class SyncDigest:
    datasets: tuple[str, ...]
    digests: tuple[int, ...]
    reply: bool


@dataclass(frozen=True, slots=True)
class SyncRecords:
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class MailboxSync:
    mailbox: str
    records: tuple[Record, ...]
    reply: bool
    # The sender considers itself an owner. A holder drops a mailbox only on replies from
    # self-declared owners: two non-owners whose views disagree could otherwise each
    # confirm the other and both drop it.
    owner: bool


@dataclass(frozen=True, slots=True)
class KeyHandoff:
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class KeyHandoffDone:
    keys: tuple[str, ...]


@dataclass(slots=True)
class Member:
    node_id: bytes
    name: str
    address: Address
    incarnation: int
    tags: dict[str, str]
    state: str

    def info(self) -> MemberInfo:
        return MemberInfo(self.node_id, self.name, self.address[0], self.address[1],
                          self.incarnation, tuple(f"{k}={v}" for k, v in self.tags.items()),
                          self.state)


# The simulator sends every message through a wire codec; the stand-in's messages have
# their own registry, compiled from their type hints like the core's.
STANDIN_MESSAGES = MessageRegistry()
for _type_id, _cls in enumerate((Hello, MemberList, Gossip, Push, SyncDigest, SyncRecords,
                                 MailboxSync, KeyHandoff, KeyHandoffDone), start=1):
    STANDIN_MESSAGES.register(_type_id, _cls)
