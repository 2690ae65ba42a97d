"""NodeCore: one cluster member, sans-IO. The agent and the simulator drive exactly this API.

Theory of operation. The core owns the membership core, the hybrid logical clock, the
digests and reconciliation sessions (through `AntiEntropy`), the push bookkeeping and the
scope view; the store is the durable truth. Every input (`receive`, `handle_timer`, a command)
runs to completion synchronously and leaves commands for the driver in `events()`; the driver
sends them, then re-arms one timer at `next_deadline()`.

Rules:
1. Durable before visible: a record is applied to the store (durable on return) before the
   write is acknowledged to its caller, before it is pushed, and before a peer's push is
   acknowledged.
2. Containment (Invariant 2): before each send the recipient's right to hold each record is
   checked with the current `ScopeView`; on receipt the receiver checks its own right and
   refuses what it may not hold. Node-local datasets are never sent and always refused.
   A node that loses eligibility purges its private keys at once.
3. Placement (Invariant 3): a mailbox record this node holds but does not own is pushed to
   its owners and removed only once every owner acknowledged holding it.
4. Tombstone horizon (Invariant 5): a node whose last completed reconciliation is older
   than `tombstone_grace_s` is quarantined while it has peers: it exchanges no data and takes
   no replicated writes until `reseed` discards its replicated data.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..config import NodeConfig
from .authorization import (
    admin_records,
    load_policy,
    local_write_check,
    newly_admitted,
    peer_refusal,
    sign_local,
)
from .anti_entropy import AntiEntropy
from .authority import Authority
from .catalog import Scope
from .catalog import dataset as lookup_dataset
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    Address,
    Disconnect,
    Event,
    MemberChanged,
    PeerRefused,
    RecordsApplied,
    RecordsPurged,
    Send,
)
from .handoff import Handoffs, hand_off_targets, releasable, to_hand_off
from .hlc import HybridClock
from .membership import (
    Ack,
    Gossip,
    Membership,
    Nack,
    Ping,
    PingRequest,
    PushPull,
    tags_from_config,
)
from .placement import POLICY_DATASET
from .records import Record, check_record
from .replication import Push, PushAck, PushTracker
from .scopes import (
    HOLDING_STATES,
    PRIVATE_KEYS,
    WEB_MESSENGER,
    MemberView,
    ScopeView,
    withheld_by_peer,
)
from .store import RecordStore

__all__ = ["SOFTWARE_VERSION", "NodeCore"]

SOFTWARE_VERSION = "gossipnode/0.1.0 proto/2"
# Tombstones are collected this often (or every tenth of the grace period, if shorter);
# collection is cheap, but there is no hurry either.
TOMBSTONE_GC_INTERVAL_S = 3600.0
# Records per push message: fresh writes come one by one, a forward batches a few.
PUSH_RECORDS_MAX = 64
# Mailbox partners reconciled per anti-entropy round: every partner is reached within
# ceil(partners / this) rounds, at one round trip per partner whose digests agree.
PAIR_PARTNERS_PER_ROUND = 8
# While records wait for a handoff, it is retried this often (a push's own retries stop
# after PUSH_ATTEMPTS_MAX; the members that must take the records may be back by then).
HANDOFF_RETRY_S = 2.0
HANDED_OFF_DATASETS = frozenset({PRIVATE_KEYS, WEB_MESSENGER})
META_SYNCED_MS = "synced_ms"
MEMBERSHIP_MESSAGES = (Ping, Ack, PingRequest, Nack, Gossip, PushPull)
META_GENERATION = "generation"

ContentCheck = Callable[[Record], str | None]


class NodeCore:
    def __init__(
        self,
        config: NodeConfig,
        *,
        store: RecordStore,
        node_id: bytes,
        rng: random.Random,
        now: float,
        sign: Callable[[bytes], bytes],
        verify: Callable[[bytes, bytes, bytes], bool],
        decode_value: Callable[[bytes], Mapping[str, Any]],
        incarnation: int,
        content_check: ContentCheck | None = None,
        progress: Callable[[str, int], None] | None = None,
    ) -> None:
        """`progress(dataset, records)` is called while digests are built from a large
        store at start-up, so that the shell can log how far it got."""
        self.config = config
        self.store = store
        self.node_id = node_id
        self.rng = rng
        self.decode_value = decode_value
        self.content_check = content_check
        self.counters: Counter[str] = Counter()
        self.withheld: Counter[tuple[bytes, str]] = Counter()
        self.refused_from: Counter[bytes] = Counter()
        # When we last heard from each peer, for `members` (last seen).
        self.last_heard: dict[bytes, float] = {}
        self._events: list[Event] = []
        replication = config.replication
        self.clock = HybridClock(node_id, int(replication.clock_drift_max_s * 1000))
        self.pushes = PushTracker(queue_records_max=replication.peer_queue_records_max)
        self.handoffs = Handoffs()
        self._rotation = 0
        # Records wait for a handoff: retry at every membership change, not only each round.
        self._handoff_waiting = False
        self._next_handoff = now
        self._seeds: tuple[Address, ...] = ()
        self.generation = int.from_bytes(store.get_meta(META_GENERATION) or b"\x01", "big")
        synced = store.get_meta(META_SYNCED_MS)
        if synced is None:
            synced = _ms(now).to_bytes(8, "big")
            store.set_meta(META_SYNCED_MS, synced)
        self.synced_ms = int.from_bytes(synced, "big")
        self.tags = {**tags_from_config(config.tags, SOFTWARE_VERSION),
                     "generation": str(self.generation)}
        self.membership = Membership(
            config.membership, node_id=node_id, name=config.name, address=config.listen,
            tags=self.tags, incarnation=incarnation, rng=rng, now=now, sign=sign,
            verify=verify,
        )
        self.sign = sign
        self.authority = Authority(config.admin_keys, verify)
        self.policy = load_policy(store, self.authority, decode_value)
        # The members as the scope view needs them, kept in step with MemberChanged events
        # (rebuilding them from the membership on every change costs O(n) each time).
        self._member_views: dict[bytes, MemberView] = {
            m.node_id: MemberView(m.node_id, m.name, m.state, dict(m.tags))
            for m in self.membership.members()
        }
        self.view = self._build_view()
        self.anti_entropy = AntiEntropy(config, store, node_id, rng)
        newest = self.anti_entropy.build(self.view, progress)
        if newest is not None:
            # After a restart the wall clock may be behind what we stamped before.
            self.clock.observe(newest, max(newest.wall_ms, _ms(now)))
        self._gc_interval_s = min(TOMBSTONE_GC_INTERVAL_S, replication.tombstone_grace_s / 10)
        self._next_gc = now + self._gc_interval_s
        self._next_anti_entropy = now + rng.uniform(0.5, 1.0) * replication.anti_entropy_interval_s
        self._hand_off(now)
        self._drain_membership(now)

    # --- commands ------------------------------------------------------------------------------

    def join(self, seeds: Sequence[Address], now: float) -> None:
        self._seeds = tuple(seeds)
        self.membership.join(seeds, now)
        self._drain_membership(now)

    def leave(self, now: float) -> None:
        self.membership.leave(now)
        self._drain_membership(now)

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        merged = {**self.tags, **tags}
        self.tags = merged
        self.membership.set_tags(merged, now)
        self._drain_membership(now)
        self._membership_or_policy_changed(now)

    def put(self, dataset: str, key: str, value: bytes, now: float) -> Record:
        """Write a record; durable when this returns. Raises LocalProtocolError."""
        result = self.write_many([(dataset, key, value)], now)[0]
        if isinstance(result, LocalProtocolError):
            raise result
        return result

    def delete(self, dataset: str, key: str, now: float) -> Record:
        """Delete a record (a tombstone); durable when this returns."""
        result = self.write_many([(dataset, key, None)], now)[0]
        if isinstance(result, LocalProtocolError):
            raise result
        return result

    def write_many(self, writes: Sequence[tuple[str, str, bytes | None]],
                   now: float) -> list[Record | LocalProtocolError]:
        """Several writes (value None: a delete) made durable together, with one disk sync.

        Returns, per write in order, the record written or the LocalProtocolError that
        refused it; a refused write does not hold back the others."""
        results: list[Record | LocalProtocolError] = []
        for dataset, key, value in writes:
            try:
                results.append(self._prepare(dataset, key, value, now))
            except LocalProtocolError as error:
                results.append(error)
        accepted = [r for r in results if isinstance(r, Record)]
        if accepted:
            self._apply(accepted, source=None, now=now)
        return results

    def write_signed(self, record: Record, now: float) -> Record:
        """Store a record signed elsewhere (an administrative record the CLI signed with an
        administrator's key); durable on return. Raises LocalProtocolError when the
        signature or its signer is not accepted, or the record would not win."""
        try:
            check_record(record, self.config.limits)
            reason = self.authority.refusal(record, self.view.policy.granted)
            if reason is None and record.value is not None and self.content_check is not None:
                reason = self.content_check(record)
            if reason is not None:
                raise LocalProtocolError(reason)
            self.clock.observe(record.version, _ms(now))
        except ProtocolError as error:
            raise LocalProtocolError(str(error)) from None
        if not self._apply([record], source=None, now=now):
            raise LocalProtocolError(
                f"{record.dataset}/{record.key}: a newer record is already stored; sign again"
            )
        return record

    def admitted(self, node_id: bytes) -> bool:
        """May `node_id` take part in data replication? (An administrator admitted it, or the
        cluster runs open.) For the membership layer and for operators."""
        return self.view.admitted(node_id)

    def reseed(self, now: float) -> int:
        """Discard replicated data (not local data, not identity) and pull afresh."""
        removed = self.store.clear_replicated()
        self.generation += 1
        self.store.set_meta(META_GENERATION, self.generation.to_bytes(8, "big"))
        self._set_synced(now)
        self.policy = load_policy(self.store, self.authority, self.decode_value)
        self.view = self._build_view()
        self.anti_entropy.build(self.view)
        self.handoffs.clear()
        self._next_anti_entropy = now
        self.counters["reseeds"] += 1
        return removed

    # --- inputs --------------------------------------------------------------------------------

    def receive(self, sender: bytes, message: object, now: float) -> None:
        """A message from `sender` (the node id its channel proved). Never raises for bad
        peer input: a RemoteProtocolError is reported as PeerRefused and a Disconnect."""
        self.last_heard[sender] = now
        try:
            if isinstance(message, Push):
                self._receive_push(sender, message, now)
            elif isinstance(message, PushAck):
                self._receive_ack(sender, message, now)
            elif self.anti_entropy.accepts(message):
                self._receive_reconcile(sender, message, now)
            elif isinstance(message, MEMBERSHIP_MESSAGES):
                self.membership.receive(sender, message, now)
                self._drain_membership(now)
            else:
                raise RemoteProtocolError(f"unexpected message {type(message).__name__}")
        except ProtocolError as error:
            self._refuse(sender, str(error), disconnect=True)

    def connection_lost(self, peer: Address, now: float) -> None:
        node_id = self._node_at(peer)
        if node_id is not None:
            self.anti_entropy.abandon_peer(node_id)

    def handle_timer(self, now: float) -> None:
        self.membership.handle_timer(now)
        self._drain_membership(now)
        resend, given_up = self.pushes.due(now)
        for pending in resend:
            self._send(pending.peer, pending.push)
        self.counters["pushes_given_up"] += len(given_up)
        for peer, abort in self.anti_entropy.expire(now):
            self._send(peer, abort)
        if now >= self._next_anti_entropy:
            self._next_anti_entropy = now + self.config.replication.anti_entropy_interval_s
            self._anti_entropy_round(now)
        if self._handoff_waiting and now >= self._next_handoff:
            self._hand_off(now)
        if now >= self._next_gc:
            self._next_gc = now + self._gc_interval_s
            self._collect_tombstones(now)

    # --- outputs -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        deadlines = [self._next_anti_entropy, self._next_gc]
        if self._handoff_waiting:
            deadlines.append(self._next_handoff)
        deadlines.extend(
            deadline
            for deadline in (
                self.membership.next_deadline(),
                self.pushes.next_deadline(),
                self.anti_entropy.next_deadline(),
            )
            if deadline is not None
        )
        return min(deadlines)

    def events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # --- queries -------------------------------------------------------------------------------

    def members(self) -> list[Any]:
        return self.membership.members()

    def should_hold(self, dataset: str, key: str) -> bool:
        if not lookup_dataset(dataset).replicated:
            return True
        if dataset == WEB_MESSENGER and not self.policy.wep_replication:
            return True  # replication off: a mailbox stays where it was written
        return self.view.holds(self.node_id, dataset, key)

    def withheld_from_peers(self) -> dict[bytes, dict[str, int]]:
        """Per live peer, the records this node holds and withholds from it, by reason."""
        return withheld_by_peer(self.view, self.store, self.withheld)

    def repair(self, now: float, *, peer: bytes | None = None,
               dataset: str | None = None) -> tuple[bytes, int] | None:
        """Start an anti-entropy round now (with `peer`, or a random live peer), for one
        dataset or all; returns (peer, sessions started), or None with no live peer."""
        if self.quarantined(now):
            raise LocalProtocolError("this node is quarantined: run `gossipnode reseed` first")
        peers = self.view.peers()
        if peer is not None and peer not in peers:
            raise LocalProtocolError("that member is not a live peer")
        if not peers:
            return None
        chosen = peer if peer is not None else self.rng.choice(peers)
        messages = self.anti_entropy.start_round(
            chosen, self.view, now, datasets=None if dataset is None else (dataset,)
        )
        for message in messages:
            self._send(chosen, message)
        return chosen, len(messages)

    def quarantined(self, now: float) -> bool:
        stale = _ms(now) - self.synced_ms > self.config.replication.tombstone_grace_s * 1000
        return stale and bool(self._seeds or self.view.peers())

    def statistics(self) -> dict[str, int]:
        stats = dict(self.counters)
        stats.update({f"membership_{k}": v for k, v in self.membership.statistics().items()})
        stats["pushes_pending"] = len(self.pushes)
        stats.update(self.anti_entropy.statistics())
        stats.update(self.authority.statistics())
        return stats

    # --- writes --------------------------------------------------------------------------------

    def _prepare(self, dataset: str, key: str, value: bytes | None, now: float) -> Record:
        """Check a local write and stamp it. Raises LocalProtocolError."""
        if value is not None and not isinstance(value, bytes):
            raise LocalProtocolError("the value must be encoded bytes (a CBOR map)")
        info = lookup_dataset(dataset)
        now_ms = _ms(now)
        if info.replicated and self.quarantined(now):
            raise LocalProtocolError(
                "this node is quarantined (away longer than the tombstone grace period); "
                "run `gossipnode reseed` before writing replicated data"
            )
        if dataset == PRIVATE_KEYS and not self.view.private_keys_eligible(self.node_id):
            raise LocalProtocolError(
                "this node may not hold private keys (its private_keys tag or the cluster "
                "policy says no); write them on an eligible member"
            )
        local_write_check(dataset, self.authority)
        record = Record(dataset, key, value, self.clock.stamp(now_ms))
        check_record(record, self.config.limits)
        if value is not None and self.content_check is not None:
            reason = self.content_check(record)
            if reason is not None:
                raise LocalProtocolError(reason)
        return sign_local(record, self.sign)

    def _apply(self, records: list[Record], source: bytes | None, now: float) -> list[Record]:
        """Store, index, report, and push onwards what won. Returns the winners."""
        changes = self.store.apply_changes(records)
        if not changes:
            return []
        winners = [record for _, record in changes]
        self.anti_entropy.on_applied(changes, self.view)
        self._events.append(RecordsApplied(tuple(winners), source))
        self.counters["records_applied"] += len(winners)
        # A new policy first: the push goes to the members that may hold the records now.
        if any(r.dataset == POLICY_DATASET for r in winners):
            self.policy = load_policy(self.store, self.authority, self.decode_value)
            self._membership_or_policy_changed(now)
        replicated = [r for r in winners if lookup_dataset(r.dataset).replicated]
        self._push(replicated, exclude=source, now=now)
        return winners

    def _push(self, records: list[Record], exclude: bytes | None, now: float) -> None:
        """Send fresh records to the peers that must hold them (bounded fan-out)."""
        if not records or self.quarantined(now):
            return
        by_peer: dict[bytes, list[Record]] = {}
        fanout = self.config.replication.push_fanout
        for record in records:
            if record.dataset == WEB_MESSENGER and not self.policy.wep_replication:
                continue
            targets = [t for t in self.view.push_targets(record.dataset, record.key)
                       if t != exclude]
            if lookup_dataset(record.dataset).scope is not Scope.WEP_PLACEMENT:
                targets = self.rng.sample(targets, min(fanout, len(targets)))
            for target in targets:
                by_peer.setdefault(target, []).append(record)
        for peer, batch in sorted(by_peer.items()):
            self._start_push(peer, batch, now)

    def _start_push(self, peer: bytes, records: list[Record], now: float, *,
                    handoff: bool = False) -> None:
        for first in range(0, len(records), PUSH_RECORDS_MAX):
            chunk = tuple(records[first : first + PUSH_RECORDS_MAX])
            push = self.pushes.start(peer, chunk, now, handoff=handoff)
            if push is None:
                self._overflow(peer)
                return
            self._send(peer, push)

    def _overflow(self, peer: bytes) -> None:
        """A peer that cannot keep up: drop its queue; anti-entropy repairs it later."""
        self.pushes.drop_peer(peer)
        self.counters["peers_dropped_overflow"] += 1
        member = self.membership.member(peer)
        if member is not None:
            self._events.append(Disconnect(member.address, "push queue overflow"))

    def _send(self, peer: bytes, message: object) -> None:
        """Send to a member by node id, checking every record it carries (Invariant 2):
        a message with a record the peer may not hold is withheld whole, never sent. (That
        happens only when the view changed under a push or a session: the session is then
        ended with an abort rather than left to time out.)"""
        for record in getattr(message, "records", ()):
            if not self.view.holds(peer, record.dataset, record.key):
                self.counters["sends_withheld"] += 1
                self.withheld[(peer, record.dataset)] += 1
                abort = self.anti_entropy.refusal(message, "scope changed")
                if abort is not None:
                    self.anti_entropy.abandon(peer, abort.session)
                    self._send(peer, abort)
                return
        member = self.membership.member(peer)
        if member is None:
            return
        self.counters[f"sent_{type(message).__name__}"] += 1
        self._events.append(Send(member.address, message, peer))

    # --- receiving -----------------------------------------------------------------------------

    def _receive_push(self, sender: bytes, push: Push, now: float) -> None:
        if self.quarantined(now):
            self.counters["pushes_ignored_quarantined"] += 1
            return
        accepted, refused = [], []
        for index, record in enumerate(push.records):
            reason = self._refusal(sender, record, now)
            if reason is None:
                accepted.append(record)
            else:
                refused.append(index)
                self._refuse(sender, f"{record.dataset}/{record.key}: {reason}")
        self._apply(accepted, source=sender, now=now)
        self._send(sender, PushAck(push.push_id, tuple(refused)))

    def _refusal(self, sender: bytes, record: Record, now: float) -> str | None:
        """Why this node must not store a record from a peer, or None to accept it."""
        try:
            info = lookup_dataset(record.dataset)
            if not info.replicated:
                return "node-local data is never accepted from a peer"
            check_record(record, self.config.limits)
            reason = peer_refusal(sender, record, self.view, self.authority)
            if reason is not None:
                return reason
            if record.dataset == PRIVATE_KEYS and not self.view.private_keys_eligible(
                self.node_id
            ):
                return "this member may not hold private keys"
            if record.dataset == WEB_MESSENGER and not (
                self.policy.wep_replication and self.view.runs_wep(self.node_id)
            ):
                return "this member does not hold WEP mailboxes"
            if record.value is not None and self.content_check is not None:
                reason = self.content_check(record)
                if reason is not None:
                    return reason
            self.clock.observe(record.version, _ms(now))
        except ProtocolError as error:
            return str(error)
        return None

    def _receive_ack(self, sender: bytes, ack: PushAck, now: float) -> None:
        pending = self.pushes.acknowledge(sender, ack)
        if pending is None:
            return
        for index in ack.refused:
            if 0 <= index < len(pending.push.records):
                record = pending.push.records[index]
                self.withheld[(sender, record.dataset)] += 1
        # Any acknowledged push proves the peer holds the record, whether it was sent as a
        # handoff or as a fresh write: both count towards releasing a handoff.
        refused = set(ack.refused)
        held = [record for index, record in enumerate(pending.push.records)
                if index not in refused and record.dataset in HANDED_OFF_DATASETS]
        if held:
            self.handoffs.acknowledged(sender, held)
            self._release_handoffs()

    def _receive_reconcile(self, sender: bytes, message: object, now: float) -> None:
        if self.quarantined(now):
            # Say so rather than stay silent: the peer's session ends now instead of
            # holding one of its session slots until it times out.
            self.counters["sessions_refused_quarantined"] += 1
            abort = self.anti_entropy.refusal(message, "the peer is quarantined")
            if abort is not None:
                self._send(sender, abort)
            return
        replies, received, completed = self.anti_entropy.receive(sender, message, self.view, now)
        accepted = []
        for record in received:
            reason = self._refusal(sender, record, now)
            if reason is None and self.view.holds(self.node_id, record.dataset, record.key):
                accepted.append(record)
            elif reason is not None:
                self._refuse(sender, f"{record.dataset}/{record.key}: {reason}")
        self._apply(accepted, source=sender, now=now)
        for reply in replies:
            self._send(sender, reply)
        if completed:
            self._set_synced(now)

    def _refuse(self, sender: bytes, reason: str, *, disconnect: bool = False) -> None:
        self.counters["records_refused"] += 1
        self.refused_from[sender] += 1
        self._events.append(PeerRefused(sender, reason))
        member = self.membership.member(sender) if disconnect else None
        if member is not None:
            self._events.append(Disconnect(member.address, reason))

    # --- membership, policy, placement ---------------------------------------------------------

    def _drain_membership(self, now: float) -> None:
        changes = []
        for event in self.membership.events():
            self._events.append(event)
            if isinstance(event, MemberChanged):
                changes.append(event)
        if not changes:
            return
        placement = False
        for event in changes:
            before = self._member_views.get(event.node_id)
            after = MemberView(event.node_id, event.name, event.state, dict(event.tags))
            self._member_views[event.node_id] = after
            placement = placement or _moves_mailboxes(before, after)
        gone = [e.node_id for e in changes if e.state not in HOLDING_STATES]
        self._membership_or_policy_changed(now, placement=placement, gone=gone)

    def _build_view(self) -> ScopeView:
        local = self.membership.local_member
        self._member_views[self.node_id] = MemberView(
            local.node_id, local.name, local.state, dict(local.tags)
        )
        return ScopeView(self.node_id, dict(self._member_views), self.policy)

    def _membership_or_policy_changed(self, now: float, *, placement: bool = True,
                                      gone: Sequence[bytes] = ()) -> None:
        """Take a new scope view. `placement`: mailbox owners may have moved; `gone`:
        members no longer alive or suspect."""
        was_eligible = self.view.private_keys_eligible(self.node_id)
        before = self.view
        self.view = self._build_view()
        for peer in newly_admitted(before, self.view):
            self._start_push(peer, admin_records(self.store, self.authority), now)
        for peer in gone:
            self.pushes.drop_peer(peer)
            self.anti_entropy.abandon_peer(peer)
        moved = placement and self.anti_entropy.view_changed(self.view)
        lost_eligibility = was_eligible and not self.view.private_keys_eligible(self.node_id)
        if lost_eligibility or self._handoff_waiting or moved:
            self._hand_off(now)

    def _hand_off(self, now: float) -> None:
        """Push what this node may not keep to who must hold it; release what they hold."""
        self._next_handoff = now + HANDOFF_RETRY_S
        if self.quarantined(now):
            return
        by_target: dict[bytes, list[Record]] = {}
        waiting = to_hand_off(self.store, self.view)
        self._handoff_waiting = bool(waiting)
        for record in waiting:
            acked = self.handoffs.acked_by(record)
            for target in hand_off_targets(record, self.view):
                if target not in acked:
                    by_target.setdefault(target, []).append(record)
        for target, records in sorted(by_target.items()):
            if not self.pushes.handoff_pending(target):
                self._start_push(target, records, now, handoff=True)
        self._release_handoffs()

    def _release_handoffs(self) -> None:
        released: dict[str, list[Record]] = {}
        for record in self.handoffs.records():
            if self.store.get(record.dataset, record.key) != record or self.view.holds(
                self.node_id, record.dataset, record.key
            ):
                self.handoffs.forget(record)  # overwritten, or ours to keep after all
            elif releasable(record, self.handoffs.acked_by(record), self.view):
                self.handoffs.forget(record)
                released.setdefault(record.dataset, []).append(record)
        for dataset, records in sorted(released.items()):
            keys = tuple(record.key for record in records)
            self.store.remove(dataset, keys)
            self.anti_entropy.on_removed(records)
            self.counters[f"{dataset}_handed_off"] += len(records)
            reason = "not eligible" if dataset == PRIVATE_KEYS else "not an owner"
            self._events.append(RecordsPurged(dataset, keys, f"handed off: {reason}"))

    # --- periodic work -------------------------------------------------------------------------

    def _anti_entropy_round(self, now: float) -> None:
        if self.quarantined(now):
            self.counters["anti_entropy_skipped_quarantined"] += 1
            return
        # Only admitted peers share anything with us (admission: core/scopes.py rule 3).
        peers = [p for p in self.view.peers() if self.view.admitted(p)]
        if not peers:
            return
        peer = self.rng.choice(peers)
        self._start_sessions(peer, None, now)
        # Private keys and mailboxes are shared with only some peers, likely not the one
        # just drawn: reconcile them with partners of their own, so they are repaired as
        # often as the rest (a random peer would share a mailbox only now and then).
        if self.view.shared_scope(peer, PRIVATE_KEYS) is None:
            eligible = [p for p in peers if self.view.shared_scope(p, PRIVATE_KEYS)]
            if eligible:
                self._start_sessions(self.rng.choice(eligible), (PRIVATE_KEYS,), now)
        partners = [p for p in self.anti_entropy.pair_partners() if p != peer and p in peers]
        for partner in self._rotate(partners, PAIR_PARTNERS_PER_ROUND):
            self._start_sessions(partner, (WEB_MESSENGER,), now)
        self._hand_off(now)

    def _start_sessions(self, peer: bytes, datasets: tuple[str, ...] | None,
                        now: float) -> None:
        for message in self.anti_entropy.start_round(peer, self.view, now, datasets=datasets):
            self._send(peer, message)

    def _rotate(self, items: list[bytes], count: int) -> list[bytes]:
        """The next `count` items, round-robin across rounds (all of them if fewer)."""
        if len(items) <= count:
            return items
        start = self._rotation % len(items)
        self._rotation += count
        return [items[(start + i) % len(items)] for i in range(count)]

    def _collect_tombstones(self, now: float) -> None:
        horizon = _ms(now) - int(self.config.replication.tombstone_grace_s * 1000)
        collected = self.store.collect_tombstones(horizon)
        self.anti_entropy.on_removed(collected)
        self.counters["tombstones_collected"] += len(collected)

    def _set_synced(self, now: float) -> None:
        self.synced_ms = max(self.synced_ms, _ms(now))
        self.store.set_meta(META_SYNCED_MS, self.synced_ms.to_bytes(8, "big"))

    # --- helpers -------------------------------------------------------------------------------

    def _node_at(self, address: Address) -> bytes | None:
        for member in self.membership.members():
            if tuple(member.address) == tuple(address):
                return member.node_id
        return None


def _moves_mailboxes(before: MemberView | None, after: MemberView) -> bool:
    """Can this change of one member move mailboxes? Only a WEP member's can."""
    def key(view: MemberView | None) -> tuple[bool, bool, str] | None:
        if view is None:
            return None
        return (view.state in HOLDING_STATES, view.tags.get("wep") == "true", view.name)

    runs_wep = any(v is not None and v.tags.get("wep") == "true" for v in (before, after))
    return runs_wep and key(before) != key(after)


def _ms(now: float) -> int:
    return int(now * 1000)
