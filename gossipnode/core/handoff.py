"""Handoff: records this node holds but must not keep, released once others hold them.

Rules:
1. Two kinds of record are handed off: a mailbox record this node does not own (written
   here, or its mailbox moved away), and a private key this node may no longer hold (it
   lost eligibility). Deleting either at once could lose the only copy of an acknowledged
   write (Invariant 4), so each is pushed to the members that must hold it and removed only
   when the acknowledgements say they do:
   - a mailbox record when every current owner acknowledged it (Invariant 3);
   - a private key when at least one currently eligible member acknowledged it.
2. An acknowledgement counts for the exact record (dataset, key, version, value) that was
   pushed; a newer write to the key starts over.
3. While a private key waits (no eligible member is reachable), it is never sent to
   anyone but eligible members and is never served from this node; status reports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .placement import mailbox_id
from .records import Record
from .scopes import PRIVATE_KEYS, WEB_MESSENGER, ScopeView
from .store import RecordStore

__all__ = ["Handoffs", "hand_off_targets", "releasable", "to_hand_off"]


@dataclass
class Handoffs:
    _acks: dict[tuple[str, str], tuple[Record, set[bytes]]] = field(default_factory=dict)

    def acknowledged(self, peer: bytes, records: Iterable[Record]) -> None:
        """`peer` durably holds these records (or newer versions of them)."""
        for record in records:
            entry = self._acks.get((record.dataset, record.key))
            if entry is None or entry[0] != record:
                self._acks[(record.dataset, record.key)] = (record, {peer})
            else:
                entry[1].add(peer)

    def acked_by(self, record: Record) -> frozenset[bytes]:
        entry = self._acks.get((record.dataset, record.key))
        return frozenset(entry[1]) if entry is not None and entry[0] == record else frozenset()

    def forget(self, record: Record) -> None:
        self._acks.pop((record.dataset, record.key), None)

    def records(self) -> list[Record]:
        return [record for record, _ in self._acks.values()]

    def clear(self) -> None:
        self._acks.clear()

    def __len__(self) -> int:
        return len(self._acks)


def to_hand_off(store: RecordStore, view: ScopeView) -> list[Record]:
    """Records this node holds but may not keep (rule 1)."""
    found = []
    if not view.private_keys_eligible(view.self_id):
        found += list(store.replicated(PRIVATE_KEYS))
    if view.policy.wep_replication:
        found += [r for r in store.replicated(WEB_MESSENGER)
                  if not view.holds(view.self_id, WEB_MESSENGER, r.key)]
    return found


def hand_off_targets(record: Record, view: ScopeView) -> list[bytes]:
    """The members a record is pushed to for its handoff, in a stable order."""
    if record.dataset == PRIVATE_KEYS:
        # Every eligible member, even one we think dead: after a partition heals, the
        # membership may take a while to say so, and an acknowledgement is proof enough.
        return [
            peer for peer, member in sorted(view.members.items())
            if peer != view.self_id and member.state != "left"
            and view.private_keys_eligible(peer)
        ]
    return [o for o in view.owners(mailbox_id(record.key)) or () if view.live(o)]


def releasable(record: Record, acked: frozenset[bytes], view: ScopeView) -> bool:
    """May the handed-off record now be removed here (rule 1)?"""
    if record.dataset == PRIVATE_KEYS:
        return any(view.private_keys_eligible(peer) for peer in acked)
    owners = view.owners(mailbox_id(record.key)) or ()
    return bool(owners) and set(owners) <= acked
