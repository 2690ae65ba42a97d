"""What the node's owner may tell it besides feeding it inputs: the commands the agent's
control verbs, the simulator's scenarios and the tests give (core/node.py routes the inputs,
core/node_queries.py answers the questions).

`NodeCommands` is a mixin of `NodeCore`: it drives the parts that `NodeCore.__init__` wires
up (declared below), and owns no policy of its own.

Rules:
1. A command runs to completion synchronously, as an input does: what it sends waits in
   `events()`, and the driver re-arms its timer at `next_deadline()` afterwards.
2. A write (`put`, `delete`, `write_many`, `write_signed`, `resign_private_keys`) is durable
   when the command returns (node.py rule 1). A refused write raises LocalProtocolError; in
   `write_many` it is returned in its place instead, and does not hold back the others.
3. A command that changes what the membership says (`join`, `leave`, `force_leave`,
   `set_tags`) takes the membership's events into the scope view before it returns, as
   every membership input does (`NodeCore._drain_membership`).
4. `reseed` discards the replicated data and starts the node over from what is left: the
   policy read again from the store, a new scope view, the replay guard told of the new
   generation (replays.py rule 3), the digests built again, the handoff acknowledgements
   forgotten, and a pull from the peers afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .admission import Admission
from .applying import Applying
from .authority import Authority
from .authorization import load_policy, unauthorised_private_keys
from .cluster_view import ClusterView
from .context import NodeContext
from .digests import Digests
from .errors import LocalProtocolError
from .events import Address
from .handoff import Handoff
from .lifecycle import Lifecycle
from .member_views import MemberViews
from .membership import Membership
from .placement import ClusterPolicy
from .records import Record
from .store import RecordStore
from .sync import RepairStarted, SyncScheduler

__all__ = ["NodeCommands"]


class NodeCommands:
    # Set by NodeCore.__init__ (`policy` is NodeQueries').
    node_id: bytes
    store: RecordStore
    tags: dict[str, str]
    decode_value: Callable[[bytes], Mapping[str, Any]]
    membership: Membership
    authority: Authority
    lifecycle: Lifecycle
    admission: Admission
    applying: Applying
    handoff: Handoff
    digests: Digests
    cluster_view: ClusterView
    sync: SyncScheduler
    policy: ClusterPolicy
    _ctx: NodeContext
    _views: MemberViews
    _drain_membership: Callable[[float], None]

    def join(self, seeds: Sequence[Address], now: float) -> None:
        self.lifecycle.joined(seeds)
        self.membership.join(seeds, now)
        self._drain_membership(now)

    def leave(self, now: float) -> None:
        self.membership.leave(now)
        self._drain_membership(now)

    def force_leave(self, node_id: bytes, now: float) -> bool:
        """Forget a dead member now, on this node only (see Membership.force_leave): the
        open cluster's force-leave. Under administrators the CLI's signed `force_left`
        record goes through `write_signed` and reaches every member. False unless dead."""
        done = self.membership.force_leave(node_id, now)
        self._drain_membership(now)
        return done

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        self.tags = {**self.tags, **tags}
        self.membership.set_tags(self.tags, now)
        self._drain_membership(now)
        self.applying.view_changed(now)

    def put(self, dataset: str, key: str, value: bytes, now: float) -> Record:
        """Write a record; durable when this returns. Raises LocalProtocolError."""
        return self._one(self.write_many([(dataset, key, value)], now)[0])

    def delete(self, dataset: str, key: str, now: float) -> Record:
        """Delete a record (a tombstone); durable when this returns."""
        return self._one(self.write_many([(dataset, key, None)], now)[0])

    def write_many(self, writes: Sequence[tuple[str, str, bytes | None]],
                   now: float) -> list[Record | LocalProtocolError]:
        """Several writes (value None: a delete) made durable together, with one disk sync.

        Returns, per write in order, the record written or the LocalProtocolError that
        refused it; a refused write does not hold back the others."""
        return self.applying.write_many(writes, now)

    def reseed(self, now: float) -> int:
        """Discard replicated data (not local data, not identity) and pull afresh."""
        removed = self.lifecycle.reseed()
        self._views.policy = load_policy(self.store, self.authority, self.decode_value)
        self._ctx.view = self._views.view()
        self.admission.replays.refresh(self._ctx.view)  # a new generation: replays.py rule 3
        self.digests.build(self._ctx.view)
        self.handoff.acks.clear()
        self.sync.reseeded(now)
        self.cluster_view.refresh(now)
        return removed

    def write_signed(self, record: Record, now: float) -> Record:
        """Store a record signed elsewhere (an administrative record the CLI signed with an
        administrator's key); durable on return. Raises LocalProtocolError when the
        signature or its signer is not accepted, or the record would not win."""
        self.admission.admit_signed(record)
        if not self.applying.apply([record], None, now):
            raise LocalProtocolError(
                f"{record.dataset}/{record.key}: a newer record is already stored; sign again"
            )
        return record

    def resign_private_keys(self, now: float) -> int:
        """Write anew, under this node's signature, the private keys other members would
        refuse (core/authorization.py rule 5); returns how many. Raises LocalProtocolError
        when this node may not hold private keys."""
        if not self._ctx.view.private_keys_eligible(self.node_id):
            raise LocalProtocolError("this node may not hold private keys: re-sign them on a "
                                     "member granted private keys")
        return self.applying.resign(
            unauthorised_private_keys(self.store, self.authority, self.policy.granted), now
        )

    def repair(self, now: float, *, peer: bytes | None = None,
               dataset: str | None = None) -> RepairStarted | None:
        """Start an anti-entropy round now (with `peer`, or a random live peer), for one
        dataset or all; returns (peer, ids of the sessions started), or None with no live
        peer. Each session reports its end with a SyncCompleted event."""
        return self.sync.repair(now, peer, dataset)

    @staticmethod
    def _one(result: Record | LocalProtocolError) -> Record:
        if isinstance(result, LocalProtocolError):
            raise result
        return result
