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
4. A private key whose writer no longer holds the private-keys grant (this node itself,
   after it lost its grant, or another member revoked; core/authority.py) can be accepted by
   no one any more: its only valid signer is no longer trusted. When a member refuses it, a
   node that is not granted private keys itself removes it rather than keep it forever (the
   members still granted re-signed the copies they held when the writer was revoked:
   authorization.py rule 6). A receiver refuses it whether or not it holds the key, so that
   its answer tells a member not granted private keys nothing of what it holds.
   A member whose admission is taken away is sent nothing and answered nothing, so its
   handoff never ends: it keeps the keys of writers still granted, never serving them
   (rule 3). Removing them on its own word that it is not admitted was weighed and not done:
   a wrong administrator key pinned on every node at once would make every node read itself
   not admitted and remove every copy; a handoff removes only against an acknowledgement.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .context import NodeContext
from .digests import Digests
from .events import RecordsPurged
from .lifecycle import Lifecycle
from .membership import LEFT
from .placement import mailbox_id
from .records import Record
from .replication import Replication
from .scopes import PRIVATE_KEYS, WEB_MESSENGER, ScopeView
from .store import RecordStore

__all__ = ["Handoff", "Handoffs", "hand_off_targets", "releasable", "to_hand_off"]

# While records wait for a handoff, it is retried this often (a push's own retries stop
# after PUSH_ATTEMPTS_MAX; the members that must take the records may be back by then).
HANDOFF_RETRY_S = 2.0
TIMER_HANDOFF = "handoff"


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
            if peer != view.self_id and member.state != LEFT
            and view.private_keys_eligible(peer)
        ]
    return [o for o in view.owners(mailbox_id(record.key)) or () if view.live(o)]


def releasable(record: Record, acked: frozenset[bytes], view: ScopeView) -> bool:
    """May the handed-off record now be removed here (rule 1)?"""
    if record.dataset == PRIVATE_KEYS:
        return any(view.private_keys_eligible(peer) for peer in acked)
    owners = view.owners(mailbox_id(record.key)) or ()
    return bool(owners) and set(owners) <= acked


class Handoff:
    """The handoff duty of one node: push what it may not keep, release what is held."""

    def __init__(self, ctx: NodeContext, lifecycle: Lifecycle, replication: Replication,
                 digests: Digests) -> None:
        self._ctx = ctx
        self._lifecycle = lifecycle
        self._replication = replication
        self._digests = digests
        self.acks = Handoffs()
        # Records wait for a handoff: retry at every membership change and every
        # HANDOFF_RETRY_S, not only each anti-entropy round.
        self.waiting = False

    def run(self, now: float) -> None:
        """Push what this node may not keep to who must hold it; release what they hold."""
        try:
            if self._lifecycle.quarantined():
                return
            view = self._ctx.view
            by_target: dict[bytes, list[Record]] = {}
            waiting = to_hand_off(self._ctx.store, view)
            self.waiting = bool(waiting)
            for record in waiting:
                acked = self.acks.acked_by(record)
                for target in hand_off_targets(record, view):
                    if target not in acked:
                        by_target.setdefault(target, []).append(record)
            pushes = self._replication.pushes
            for target, records in sorted(by_target.items()):
                if not pushes.handoff_pending(target):
                    self._replication.start(target, records, now, handoff=True)
            self.release()
        finally:
            if self.waiting:
                self._ctx.timers.set(TIMER_HANDOFF, now + HANDOFF_RETRY_S)
            else:
                self._ctx.timers.cancel(TIMER_HANDOFF)

    def acknowledged(self, peer: bytes, records: list[Record]) -> None:
        if records:
            self.acks.acknowledged(peer, records)
            self.release()

    def refused(self, records: list[Record]) -> None:
        """A peer refused these records of ours: remove those no one can accept (rule 4)."""
        ctx = self._ctx
        policy = ctx.view.policy
        if not records or not policy.enforced or (
            policy.admitted(ctx.node_id) and policy.granted(ctx.node_id, PRIVATE_KEYS)
        ):
            return
        doomed = [r for r in records if r.dataset == PRIVATE_KEYS
                  and not (policy.admitted(r.version.origin)
                           and policy.granted(r.version.origin, PRIVATE_KEYS))
                  and ctx.store.get(r.dataset, r.key) == r]
        if not doomed:
            return
        keys = tuple(r.key for r in doomed)
        ctx.store.remove(PRIVATE_KEYS, keys)
        self._digests.on_removed(doomed)
        for record in doomed:
            self.acks.forget(record)
        ctx.counters["private_keys_undeliverable"] += len(doomed)
        ctx.emit(RecordsPurged(PRIVATE_KEYS, keys, "refused: their writer's private-keys "
                               "grant is gone, and so is this member's"))

    def release(self) -> None:
        """Remove the handed-off records every required member now holds (rule 1)."""
        ctx = self._ctx
        released: dict[str, list[Record]] = {}
        for record in self.acks.records():
            if ctx.store.get(record.dataset, record.key) != record or ctx.view.holds(
                ctx.node_id, record.dataset, record.key
            ):
                self.acks.forget(record)  # overwritten, or ours to keep after all
            elif releasable(record, self.acks.acked_by(record), ctx.view):
                self.acks.forget(record)
                released.setdefault(record.dataset, []).append(record)
        for dataset, records in sorted(released.items()):
            keys = tuple(record.key for record in records)
            ctx.store.remove(dataset, keys)
            self._digests.on_removed(records)
            ctx.counters[f"{dataset}_handed_off"] += len(records)
            reason = "not eligible" if dataset == PRIVATE_KEYS else "not an owner"
            ctx.emit(RecordsPurged(dataset, keys, f"handed off: {reason}"))
