"""NodeCore: one cluster member, sans-IO. The agent and the simulator drive exactly this API.

Theory of operation. `NodeCore` routes inputs and events over named parts that share one
`NodeContext` (identity, store, membership, one timers heap, the current scope view, the
event queue): `Admission`, `Applying`, `Replication`, `Handoff`, `MemberViews`, `Digests`,
`AntiEntropy`, `SyncScheduler`, `Lifecycle`, `Outbound` (docs/architecture.md says what
each owns). Every input (`receive`, `handle_timer`, a command) runs to completion
synchronously and leaves commands for the driver in `events()`; the driver sends them, then
re-arms one timer at `next_deadline()`. The store is the durable truth.

Rules:
1. Durable before visible: a record is applied to the store (durable on return) before the
   write is acknowledged to its caller, before it is pushed, and before a peer's push is
   acknowledged. A store may defer its disk sync (the agent's does); its driver then holds
   the answer and the input's events back until the sync covers the commit.
2. Containment (Invariant 2): before each send the recipient's right to hold each record is
   checked with the current `ScopeView` (`Outbound.send`); on receipt the receiver checks
   its own right (`Admission`). Node-local datasets are never sent and always refused. A
   node that loses eligibility hands its private keys off and purges them.
3. The shell reads the node through `status()` (a frozen snapshot) and the queries of
   core/node_queries.py, never through the parts, and tells it what to do through the
   commands of core/node_commands.py (joins, leaves, writes, reseed, repair).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from ..config import NodeConfig
from .admission import Admission, ContentCheck
from .anti_entropy import SESSION_TIMER, AntiEntropy
from .applying import Applying
from .authority import Authority
from .authorization import load_policy, member_admitted
from .cluster_view import COMPARED_DATASETS, ClusterView
from .context import NodeContext, WallClock
from .errors import ProtocolError, RemoteProtocolError
from .events import Address, Event
from .handoff import TIMER_HANDOFF, Handoff
from .lifecycle import TIMER_GC, Lifecycle, stored_generation
from .member_views import MemberViews
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
from .merging import ValueMerge
from .node_commands import NodeCommands
from .node_queries import NodeQueries
from .outbound import Outbound
from .replication import PUSH_TIMER, Push, PushAck, Replication
from .store import RecordStore
from .sync import (
    TIMER_ANTI_ENTROPY,
    TIMER_RESUME,
    TIMER_REVIVED,
    SyncScheduler,
)

__all__ = ["SOFTWARE_VERSION", "ContentCheck", "NodeCore"]

SOFTWARE_VERSION = "gossipnode/0.1.0 proto/5"
MEMBERSHIP_MESSAGES = (Ping, Ack, PingRequest, Nack, Gossip, PushPull)


class NodeCore(NodeCommands, NodeQueries):
    def __init__(
        self,
        config: NodeConfig,
        *,
        store: RecordStore,
        node_id: bytes,
        rng: random.Random,
        now: float,
        wall_ms: WallClock,
        sign: Callable[[bytes], bytes],
        verify: Callable[[bytes, bytes, bytes], bool],
        decode_value: Callable[[bytes], Mapping[str, Any]],
        incarnation: int,
        content_check: ContentCheck | None = None,
        progress: Callable[[str, int], None] | None = None,
        merges: Mapping[str, ValueMerge] | None = None,
    ) -> None:
        """`now` is the driver's monotonic time in seconds, as every input passes it: it
        drives the timers. `wall_ms()` is the wall clock in Unix milliseconds, read only for
        version stamps, the tombstone horizon and the last-sync time (core/context.py,
        rule 4); a driver that steps one clock leaves the other alone. `progress(dataset,
        records)` is called while digests are built from a large store at start-up, so
        that the shell can log how far it got. `merges` maps a dataset to the function that
        merges two live values of one key (merging.py); every other dataset is
        last-writer-wins."""
        self.config = config
        self.store = store
        self.node_id = node_id
        self.decode_value = decode_value
        # When we last heard from each peer, for `members` (last seen).
        self._last_heard: dict[bytes, float] = {}
        self.tags = {**tags_from_config(config.tags, SOFTWARE_VERSION),
                     "generation": str(stored_generation(store))}
        self.membership = Membership(
            config.membership, node_id=node_id, name=config.name, address=config.listen,
            tags=self.tags, incarnation=incarnation, rng=rng, now=now, sign=sign,
            verify=verify, root_datasets=COMPARED_DATASETS,
            admitted=lambda peer: member_admitted(self._views.policy, node_id, peer),
        )
        self.authority = Authority(config.admin_keys, verify)
        self._views = MemberViews(self.membership,
                                  load_policy(store, self.authority, decode_value))
        ctx = self._ctx = NodeContext(config, store, node_id, rng, self.membership,
                                      self._views.view(), wall_ms)
        self.anti_entropy = AntiEntropy(ctx, merging=merges or ())
        self.outbound = Outbound(ctx, self.anti_entropy)
        ctx.send = self.outbound.send
        self.lifecycle = Lifecycle(ctx)
        self.admission = Admission(ctx, self.lifecycle, content_check, self.authority, sign)
        self.replication = Replication(ctx, self.lifecycle)
        self.handoff = Handoff(ctx, self.lifecycle, self.replication, self.anti_entropy.digests)
        self.digests = self.anti_entropy.digests
        self.cluster_view = ClusterView(ctx, self.digests)
        self.applying = Applying(
            ctx, config, views=self._views, admission=self.admission,
            replication=self.replication, handoff=self.handoff, anti_entropy=self.anti_entropy,
            cluster_view=self.cluster_view, authority=self.authority,
            decode_value=decode_value, merges=merges or {},
            drain_membership=self._drain_membership,
            view_taken=lambda now: self.sync.view_changed(now))
        self.sync = SyncScheduler(ctx, self.lifecycle, self.anti_entropy, self.admission,
                                  self.applying.apply_synced, self.cluster_view.agreed_with,
                                  ask_roots=self._ask_roots)
        self.admission.restarted(self.digests.build(ctx.view, progress))
        self.lifecycle.start(now)
        self.sync.start(now)
        self.handoff.run(now)
        self.membership.set_force_left(self._views.policy.force_left, now)
        self._drain_membership(now)
        self.cluster_view.refresh(now)

    # --- inputs --------------------------------------------------------------------------------

    def receive(self, sender: bytes, message: object, now: float) -> None:
        """A message from `sender` (the node id its channel proved). Never raises for bad
        peer input: a RemoteProtocolError is reported as PeerRefused and a Disconnect."""
        self._last_heard[sender] = now
        try:
            if isinstance(message, Push):
                self._receive_push(sender, message, now)
            elif isinstance(message, PushAck):
                held, refused = self.replication.acknowledged(sender, message)
                self.handoff.acknowledged(sender, held)
                self.handoff.refused(refused)
            elif self.anti_entropy.accepts(message):
                self.sync.receive(sender, message, now)
            elif isinstance(message, MEMBERSHIP_MESSAGES):
                self.membership.receive(sender, message, now)
                self._drain_membership(now)
                if getattr(message, "roots", ()):
                    self.sync.roots_heard(sender, now)
            else:
                raise RemoteProtocolError(f"unexpected message {type(message).__name__}")
        except ProtocolError as error:
            self._ctx.refuse(sender, str(error), disconnect=True)
        self.cluster_view.refresh(now)  # an acknowledged handoff may have removed records

    def connection_lost(self, peer: Address, now: float) -> None:
        node_id = self._views.node_at(peer)
        if node_id is not None:
            self.anti_entropy.abandon_peer(node_id, "connection lost", cut=True)
            self.sync.sessions_ended(now)

    def handle_timer(self, now: float) -> None:
        timers = self._ctx.timers
        due = timers.pop_due(now)
        self.membership.handle_timer(now)
        self._drain_membership(now)
        keyed = [key for key in due if isinstance(key, tuple)]
        self.replication.timers_due([k[1] for k in keyed if k[0] == PUSH_TIMER], now)
        sessions = [(k[1], k[2]) for k in keyed if k[0] == SESSION_TIMER]
        for peer, abort in self.anti_entropy.expire(sessions, now):
            self.outbound.send(peer, abort)
        self.sync.sessions_ended(now)
        self.sync.resume_due([k[1] for k in keyed if k[0] == TIMER_RESUME], now)
        self.sync.revived_due([k[1] for k in keyed if k[0] == TIMER_REVIVED], now)
        if TIMER_ANTI_ENTROPY in due and self.sync.round(now):
            self.handoff.run(now)
        # Unless a handoff ran meanwhile (and re-armed its timer), retry the waiting one.
        if TIMER_HANDOFF in due and TIMER_HANDOFF not in timers and self.handoff.waiting:
            self.handoff.run(now)
        if TIMER_GC in due:
            self.digests.on_removed(self.lifecycle.collect_tombstones(now))
        self.cluster_view.refresh(now)

    # --- outputs -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest deadline of the node, O(log n) amortized (one heap)."""
        return self._ctx.timers.next()

    def events(self) -> list[Event]:
        events, self._ctx.events = self._ctx.events, []
        return events

    # --- routing -------------------------------------------------------------------------------

    def _receive_push(self, sender: bytes, push: Push, now: float) -> None:
        if self.lifecycle.quarantined():
            self._ctx.counters["pushes_ignored_quarantined"] += 1
            return
        accepted, refused = self.admission.screen(sender, push.records)
        self.applying.apply(accepted, sender, now)
        self.outbound.send(sender, PushAck(push.push_id, tuple(refused)))

    def _ask_roots(self, peer: bytes, now: float) -> bool:
        """Ask `peer` for its digest roots (sync.py rule 8), the ping sent now."""
        asked = self.membership.ask_roots(peer, now)
        self._drain_membership(now)
        return asked

    def _drain_membership(self, now: float) -> None:
        changed = self._views.drain(self._ctx)
        if changed is not None:
            placement, gone = changed
            self.applying.view_changed(now, placement=placement, gone=gone)
        if self._views.revived:
            revived, self._views.revived = self._views.revived, []
            self.sync.revived(revived, now)
