"""A small stand-in for `gossipnode.core.node.NodeCore`, to test the harness with.

It implements the NodeCore API the simulator drives (constructor, join, leave, put,
delete, set_tags, receive, connection_lost, handle_timer, next_deadline, events, members,
policy, should_hold, statistics) with the simplest protocol that converges:

- membership: Hello to the seeds, who answer with their member list; updates spread by
  gossip with a retransmit budget, plus a periodic full push-pull with one peer; a member
  whose connection fails is marked dead locally until we hear from it again (it is sent
  one Hello at once, so a mere connection reset heals at the next round trip, and each
  tick one dead member gets a Hello, so a healed partition heals the view too);
- records: a fresh write is pushed to a few peers that may hold it, and each peer that
  takes it as new forwards it once (rumor mongering); anti-entropy compares one digest per
  dataset with a random peer and ships whole datasets that differ;
- placement: mailboxes are synced between their holders and owners each tick; a holder
  that is not an owner drops a mailbox once every owner has confirmed holding it;
- private keys go only to peers eligible in this node's view, and an ineligible node
  purges what it holds; tombstones are collected after `tombstone_grace_s`, and a node
  that was away longer than that clears its replicated data on start (quarantine).

`skip_private_key_check=True` (class `BrokenStandin`) disables the eligibility checks, to
prove the checkers catch it. This is test code: it lives only under tests/.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence

from gossipnode.config import NodeConfig
from gossipnode.core.catalog import Scope
from gossipnode.core.catalog import dataset as lookup_dataset
from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.events import (
    Address,
    MemberChanged,
    PeerRefused,
    RecordsPurged,
    Send,
)
from gossipnode.core.hlc import ClockDriftError, HybridClock
from gossipnode.core.placement import (
    POLICY_DATASET,
    Candidate,
    mailbox_id,
    mailbox_owners,
    policy_from_records,
    private_keys_eligible,
    wep_candidates,
)
from gossipnode.core.records import Record, check_record
from gossipnode.core.store import RecordStore

from .standin_messages import (
    STANDIN_MESSAGES,
    Gossip,
    Hello,
    KeyHandoff,
    KeyHandoffDone,
    MailboxSync,
    Member,
    MemberInfo,
    MemberList,
    Push,
    SyncDigest,
    SyncRecords,
)

TICK_S = 0.5
GOSSIP_BATCH_MAX = 64
LAST_ALIVE_META = "standin/last_alive_ms"
INCARNATION_META = "standin/incarnation"


def _tags(config: NodeConfig) -> dict[str, str]:
    return {"private_keys": "true" if config.tags.private_keys else "false",
            "wep": "true" if config.tags.wep else "false"}


def _digest_of(record: Record) -> int:
    """A record's share of a dataset digest: stable across processes (Python's `hash` is
    salted per process, and digests go on the wire, whose bytes a report counts)."""
    text = repr((record.dataset, record.key, record.value, record.version)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


class StandinCore:
    skip_private_key_check = False
    # The simulator encodes every message with this registry (NodeCore's are the wire's).
    message_registry = STANDIN_MESSAGES

    def __init__(self, config: NodeConfig, *, store: RecordStore, node_id: bytes,
                 rng: random.Random, now: float, wall_ms: Callable[[], int],
                 sign: Callable[[bytes], bytes],
                 verify: Callable[[bytes, bytes, bytes], bool],
                 decode_value: Callable[[bytes], dict], incarnation: int,
                 content_check: Callable[[Record], str | None] | None = None,
                 merges: Mapping[str, Callable[[bytes, bytes], bytes]] | None = None) -> None:
        # `merges` (certificate datasets merge packet by packet) is accepted and not used:
        # the stand-in keeps plain last-writer-wins, which its checks are written for.
        self.config = config
        self.content_check = content_check
        self.store = store
        self.node_id = node_id
        self.rng = rng
        self.decode_value = decode_value
        self.wall_ms = wall_ms  # stamps and tombstone ages; `now` drives the timers only
        self.clock = HybridClock(node_id, int(config.replication.clock_drift_max_s * 1000))
        self._events: list[object] = []
        self._seeds: list[Address] = []
        self._joined = False
        # The incarnation outlives restarts, so that news of this start outranks every
        # update this node made to itself (set_tags) in an earlier life.
        stored = store.get_meta(INCARNATION_META)
        if stored is not None:
            incarnation = max(incarnation, int.from_bytes(stored, "big") + 1)
        store.set_meta(INCARNATION_META, incarnation.to_bytes(8, "big"))
        self_member = Member(node_id, config.name, config.listen, incarnation,
                             _tags(config), "alive")
        self._members: dict[bytes, Member] = {node_id: self_member}
        self._by_address: dict[Address, bytes] = {config.listen: node_id}
        self._broadcasts: list[list] = [[self_member.info(), self._retransmits()]]
        self._confirmed: dict[tuple[bytes, str], frozenset[Record]] = {}
        self._next_tick = now + TICK_S
        self._last_now = now
        self._next_sync = now + rng.uniform(0, config.replication.anti_entropy_interval_s)
        self._next_push_pull = now + rng.uniform(0, config.membership.push_pull_interval_s)
        grace_ms = int(config.replication.tombstone_grace_s * 1000)
        last = store.get_meta(LAST_ALIVE_META)
        if last is not None and wall_ms() - int.from_bytes(last, "big") > grace_ms:
            store.clear_replicated()  # away past the tombstone horizon: quarantine
        self._digests: dict[str, int] = {}
        for dataset in self._synced_datasets(all_of_them=True):
            for record in store.replicated(dataset):
                self._digests[dataset] = self._digests.get(dataset, 0) ^ _digest_of(record)
        self.policy = policy_from_records(store.replicated(POLICY_DATASET), decode_value)

    # -- helpers --------------------------------------------------------------------

    def _retransmits(self) -> int:
        return math.ceil(math.log10(len(getattr(self, "_members", ())) + 2)) + 1

    def _synced_datasets(self, all_of_them: bool = False) -> list[str]:
        from gossipnode.core.catalog import DATASETS
        return [d.name for d in DATASETS
                if d.scope is Scope.ALL or (d.scope is Scope.PRIVATE_KEY_ELIGIBLE
                                            and (all_of_them or self._eligible(self.node_id)))]

    def _eligible(self, node_id: bytes) -> bool:
        if self.skip_private_key_check:
            return True
        member = self._members.get(node_id)
        return member is not None and private_keys_eligible(node_id, member.tags, self.policy)

    def _alive_peers(self) -> list[Member]:
        return [m for m in self._members.values()
                if m.state == "alive" and m.node_id != self.node_id]

    def _owners(self, mailbox: str) -> tuple[bytes, ...] | None:
        candidates = wep_candidates(
            [Candidate(m.node_id, m.name, m.tags) for m in self._members.values()
             if m.state == "alive"], self.policy)
        return mailbox_owners(mailbox, candidates, self.policy)

    def _may_hold(self, peer: bytes, record: Record) -> bool:
        scope = lookup_dataset(record.dataset).scope
        if scope is Scope.ALL:
            return True
        if scope is Scope.PRIVATE_KEY_ELIGIBLE:
            return self._eligible(peer)
        if scope is Scope.WEP_PLACEMENT:
            owners = self._owners(mailbox_id(record.key))
            return owners is not None and peer in owners
        return False

    def _send(self, member: Member, message: object) -> None:
        self._events.append(Send(member.address, message))

    def _apply(self, records: Sequence[Record], source: bytes | None) -> list[Record]:
        olds = {(r.dataset, r.key): self.store.get(r.dataset, r.key) for r in records}
        winners = self.store.apply(records)
        policy_changed = False
        for record in winners:
            if lookup_dataset(record.dataset).scope in (Scope.ALL, Scope.PRIVATE_KEY_ELIGIBLE):
                old = olds[(record.dataset, record.key)]
                digest = self._digests.get(record.dataset, 0) ^ _digest_of(record)
                self._digests[record.dataset] = digest ^ (_digest_of(old) if old is not None else 0)
            policy_changed |= record.dataset == POLICY_DATASET
        if policy_changed:
            self.policy = policy_from_records(self.store.replicated(POLICY_DATASET),
                                              self.decode_value)
        return winners

    def _removed(self, records: Sequence[Record]) -> None:
        for record in records:
            if record.dataset in self._digests:
                self._digests[record.dataset] ^= _digest_of(record)

    # -- commands -------------------------------------------------------------------

    def join(self, seeds: Sequence[Address], now: float) -> None:
        self._seeds = list(seeds)
        self._joined = not self._seeds
        self._hello()

    def _hello(self) -> None:
        for seed in self._seeds:
            self._events.append(Send(seed, Hello(self._members[self.node_id].info())))

    def leave(self, now: float) -> None:
        me = self._members[self.node_id]
        me.state, me.incarnation = "left", me.incarnation + 1
        self.store.set_meta(INCARNATION_META, me.incarnation.to_bytes(8, "big"))
        for member in self._alive_peers():
            self._send(member, Gossip((me.info(),)))

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        me = self._members[self.node_id]
        me.tags, me.incarnation = dict(tags), me.incarnation + 1
        self.store.set_meta(INCARNATION_META, me.incarnation.to_bytes(8, "big"))
        self._broadcasts.append([me.info(), self._retransmits()])

    def _write(self, dataset: str, key: str, value: bytes | None, now: float) -> Record:
        self._observe_now(now)
        scope = lookup_dataset(dataset).scope
        if scope is Scope.PRIVATE_KEY_ELIGIBLE and not self._eligible(self.node_id):
            raise LocalProtocolError("this node may not hold private keys")
        record = Record(dataset, key, value, self.clock.stamp(self.wall_ms()))
        check_record(record, self.config.limits)
        if value is not None and self.content_check is not None:
            reason = self.content_check(record)
            if reason is not None:
                raise LocalProtocolError(reason)
        self._apply([record], None)
        if scope is not Scope.LOCAL:
            self._spread([record], exclude=None)
        return record

    def write_many(self, writes: Sequence[tuple[str, str, bytes | None]],
                   now: float) -> list[Record | LocalProtocolError]:
        """What the driver's group commit calls; per write, the record or the refusal."""
        results: list[Record | LocalProtocolError] = []
        for dataset, key, value in writes:
            try:
                results.append(self._write(dataset, key, value, now))
            except LocalProtocolError as error:
                results.append(error)
        return results

    def put(self, dataset: str, key: str, value: bytes, now: float) -> Record:
        return self._write(dataset, key, value, now)

    def delete(self, dataset: str, key: str, now: float) -> Record:
        return self._write(dataset, key, None, now)

    def _spread(self, records: Sequence[Record], exclude: bytes | None) -> None:
        peers = [m for m in self._alive_peers() if m.node_id != exclude]
        fanout = self.config.replication.push_fanout
        for record in records:
            if lookup_dataset(record.dataset).scope is Scope.WEP_PLACEMENT:
                owners = self._owners(mailbox_id(record.key)) or ()
                targets = [self._members[o] for o in owners
                           if o != self.node_id and o != exclude]
            else:
                eligible = [m for m in peers if self._may_hold(m.node_id, record)]
                targets = self.rng.sample(eligible, min(fanout, len(eligible)))
            for member in targets:
                self._send(member, Push((record,)))

    # -- inputs ---------------------------------------------------------------------

    def receive(self, sender: bytes, message: object, now: float) -> None:
        self._observe_now(now)
        member = self._members.get(sender)
        if member is not None and member.state == "dead":
            member.state = "alive"
        if isinstance(message, Hello):
            self._merge_member(message.member)
            self._events.append(Send((message.member.host, message.member.port),
                                     MemberList(self._member_infos(), reply=True)))
        elif isinstance(message, MemberList):
            self._joined = True
            for info in message.members:
                self._merge_member(info)
            if not message.reply and member is not None:
                self._send(member, MemberList(self._member_infos(), reply=True))
        elif isinstance(message, Gossip):
            for info in message.updates:
                self._merge_member(info)
        elif isinstance(message, Push | SyncRecords):
            winners = self._take(sender, message.records, now)
            if isinstance(message, Push) and winners:
                self._spread(winners, exclude=sender)
        elif isinstance(message, KeyHandoff):
            self._take(sender, message.records, now)
            held = tuple(r.key for r in message.records
                         if (mine := self.store.get(r.dataset, r.key)) is not None
                         and mine.version >= r.version)
            if member is not None and held:
                self._send(member, KeyHandoffDone(held))
        elif isinstance(message, KeyHandoffDone):
            self._handed_off(message.keys)
        elif isinstance(message, SyncDigest):
            self._answer_digest(sender, message)
        elif isinstance(message, MailboxSync):
            self._take(sender, message.records, now)
            mine = tuple(self.store.scan("web_messenger", prefix=message.mailbox + "/",
                                         tombstones=True))
            if member is not None and not message.reply:
                owner = self.node_id in (self._owners(message.mailbox) or ())
                self._send(member, MailboxSync(message.mailbox, mine, True, owner))
            elif message.reply and message.owner:
                # What the owner says it holds, not what we hold after merging its reply:
                # a message written here after our sync went out is not confirmed by it.
                self._confirmed[(sender, message.mailbox)] = frozenset(message.records)

    def _take(self, sender: bytes, records: Sequence[Record], now: float) -> list[Record]:
        accepted = []
        for record in records:
            scope = lookup_dataset(record.dataset).scope
            if scope is Scope.LOCAL or (scope is Scope.PRIVATE_KEY_ELIGIBLE
                                        and not self._eligible(self.node_id)):
                self._events.append(PeerRefused(sender, f"may not hold {record.dataset}"))
                continue
            try:
                self.clock.observe(record.version, self.wall_ms())
            except ClockDriftError as error:
                self._events.append(PeerRefused(sender, str(error)))
                continue
            accepted.append(record)
        return self._apply(accepted, sender)

    def _answer_digest(self, sender: bytes, message: SyncDigest) -> None:
        member = self._members.get(sender)
        if member is None:
            return
        for dataset, digest in zip(message.datasets, message.digests, strict=True):
            if lookup_dataset(dataset).scope is Scope.PRIVATE_KEY_ELIGIBLE and not (
                    self._eligible(sender) and self._eligible(self.node_id)):
                continue
            if self._digests.get(dataset, 0) != digest:
                self._send(member, SyncRecords(tuple(self.store.replicated(dataset))))
        if not message.reply:
            self._send(member, self._digest_message(reply=True))

    def _digest_message(self, reply: bool) -> SyncDigest:
        datasets = tuple(self._synced_datasets())
        return SyncDigest(datasets, tuple(self._digests.get(d, 0) for d in datasets), reply)

    def _member_infos(self) -> tuple[MemberInfo, ...]:
        return tuple(m.info() for m in self._members.values())

    def _merge_member(self, info: MemberInfo) -> None:
        if info.node_id == self.node_id:
            return
        known = self._members.get(info.node_id)
        if known is not None and known.incarnation >= info.incarnation:
            return
        tags = dict(tag.split("=", 1) for tag in info.tags)
        address = (info.host, info.port)
        member = Member(info.node_id, info.name, address, info.incarnation, tags, info.state)
        self._members[info.node_id] = member
        self._by_address[address] = info.node_id
        self._broadcasts.append([info, self._retransmits()])
        self._events.append(MemberChanged(info.node_id, info.name, address, info.state,
                                          info.incarnation))

    def connection_lost(self, peer: Address, now: float) -> None:
        self._observe_now(now)
        node_id = self._by_address.get(peer)
        member = self._members.get(node_id) if node_id is not None else None
        if member is not None and member.state == "alive" and node_id != self.node_id:
            member.state = "dead"
            # A reset is not a death: say hello once; if it is up, its answer revives it.
            self._events.append(Send(peer, Hello(self._members[self.node_id].info())))

    def handle_timer(self, now: float) -> None:
        self._observe_now(now)
        if now >= self._next_tick:
            self._next_tick = now + TICK_S
            self._tick(now)
        if now >= self._next_sync:
            self._next_sync = now + self.config.replication.anti_entropy_interval_s
            # Confirmations go stale (an owner may have dropped a mailbox while it was not
            # an owner in its own view): re-verify every mailbox once per round.
            self._confirmed.clear()
            peers = self._alive_peers()
            if peers:
                self._send(self.rng.choice(peers), self._digest_message(reply=False))
        if now >= self._next_push_pull:
            self._next_push_pull = now + self.config.membership.push_pull_interval_s
            # Dead members too: one that came back is found this way even if the news of
            # its restart never reached us.
            peers = [m for m in self._members.values()
                     if m.state != "left" and m.node_id != self.node_id]
            if peers:
                self._send(self.rng.choice(peers), MemberList(self._member_infos(), False))

    def _tick(self, now: float) -> None:
        now_ms = self.wall_ms()
        self.store.set_meta(LAST_ALIVE_META, now_ms.to_bytes(8, "big"))
        if not self._joined:
            self._hello()
        dead = [m for m in self._members.values() if m.state == "dead"]
        if dead:  # one Hello per tick to a member we lost: a healed path revives it
            member = self.rng.choice(dead)
            self._events.append(Send(member.address, Hello(self._members[self.node_id].info())))
        self._gossip()
        self._purge_private_keys()
        grace_ms = int(self.config.replication.tombstone_grace_s * 1000)
        self._removed(self.store.collect_tombstones(now_ms - grace_ms))
        self._sync_mailboxes()

    def _purge_private_keys(self) -> None:
        """An ineligible node hands its private keys to eligible peers (it may hold the
        only copy of a fresh write) and drops each once a peer confirms holding it."""
        if self._eligible(self.node_id):
            return
        records = list(self.store.replicated("private_keys"))
        if not records:
            return
        eligible = [m for m in self._alive_peers() if self._eligible(m.node_id)]
        fanout = self.config.replication.push_fanout
        for member in self.rng.sample(eligible, min(fanout, len(eligible))):
            self._send(member, KeyHandoff(tuple(records)))

    def _handed_off(self, keys: Sequence[str]) -> None:
        """An eligible peer holds these keys: drop them, if we may still not hold them."""
        if self._eligible(self.node_id):
            return
        records = [r for r in (self.store.get("private_keys", key) for key in keys)
                   if r is not None]
        self._removed(records)
        self.store.remove("private_keys", [record.key for record in records])
        self._events.append(RecordsPurged("private_keys", tuple(keys), "ineligible"))

    def _observe_now(self, now: float) -> None:
        """A clock that jumped backwards must not stall our timers: move them back too."""
        if now < self._last_now:
            shift = self._last_now - now
            self._next_tick -= shift
            self._next_sync -= shift
            self._next_push_pull -= shift
        self._last_now = now

    def _gossip(self) -> None:
        if not self._broadcasts:
            return
        batch = self._broadcasts[:GOSSIP_BATCH_MAX]
        peers = self._alive_peers()
        fanout = self.config.membership.gossip_fanout
        for member in self.rng.sample(peers, min(fanout, len(peers))):
            self._send(member, Gossip(tuple(item[0] for item in batch)))
        for item in batch:
            item[1] -= 1
        self._broadcasts = [item for item in self._broadcasts if item[1] > 0]

    def _sync_mailboxes(self) -> None:
        if not self.policy.wep_replication:
            return
        held: dict[str, list[Record]] = {}
        for record in self.store.replicated("web_messenger"):
            held.setdefault(mailbox_id(record.key), []).append(record)
        for mailbox, records in held.items():
            owners = self._owners(mailbox) or ()
            pending = [o for o in owners if o != self.node_id
                       and not set(records) <= self._confirmed.get((o, mailbox), frozenset())]
            for owner in pending:
                self._send(self._members[owner], MailboxSync(mailbox, tuple(records), False, False))
            if not pending and self.node_id not in owners and owners:
                self.store.remove("web_messenger", [r.key for r in records])
                self._events.append(RecordsPurged("web_messenger",
                                                  tuple(r.key for r in records), "moved"))

    def quarantined(self, now: float) -> bool:
        return False  # this stand-in quarantines itself by clearing its data on start

    def reseed(self, now: float) -> int:
        self._digests.clear()
        return self.store.clear_replicated()

    # -- outputs and queries ----------------------------------------------------------

    def next_deadline(self) -> float | None:
        return min(self._next_tick, self._next_sync, self._next_push_pull)

    def events(self) -> list[object]:
        events, self._events = self._events, []
        return events

    def members(self) -> list[Member]:
        return list(self._members.values())

    def should_hold(self, dataset: str, key: str) -> bool:
        return self._may_hold(self.node_id, Record(dataset, key, None, self.clock.stamp(0)))

    def statistics(self) -> dict[str, int]:
        return {"members": len(self._members), "broadcasts": len(self._broadcasts)}


class BrokenStandin(StandinCore):
    """Sends private keys to anyone and keeps them anywhere."""

    skip_private_key_check = True


__all__ = ["BrokenStandin", "StandinCore"]
