"""What the shell may ask a node besides feeding it inputs: the frozen status snapshot and
a few queries (rule 3 of core/node.py).

`NodeQueries` is a mixin of `NodeCore`: it reads the parts that `NodeCore.__init__` wires up
(declared below) and changes nothing, so every query is safe between two inputs.
"""

from __future__ import annotations

from typing import Any

from .anti_entropy import AntiEntropy
from .authority import Authority
from .catalog import dataset as lookup_dataset
from .context import NodeContext
from .digests import Digests
from .lifecycle import Lifecycle
from .member_views import MemberViews
from .membership import Membership
from .placement import ClusterPolicy
from .replication import Replication
from .scopes import WEB_MESSENGER, withheld_by_peer
from .snapshot import NodeStatus, build_status
from .store import RecordStore

__all__ = ["NodeQueries"]


class NodeQueries:
    # Set by NodeCore.__init__.
    node_id: bytes
    store: RecordStore
    membership: Membership
    lifecycle: Lifecycle
    replication: Replication
    anti_entropy: AntiEntropy
    authority: Authority
    digests: Digests
    _ctx: NodeContext
    _views: MemberViews
    _last_heard: dict[bytes, float]

    def status(self, now: float) -> NodeStatus:
        """A frozen snapshot of this node for status, health, info and metrics. Its times
        are in the base of `now` (monotonic), the last sync's in wall seconds."""
        return build_status(self, self._ctx, now)

    def members(self) -> list[Any]:
        return self.membership.members()

    @property
    def generation(self) -> int:
        return self.lifecycle.generation

    @property
    def policy(self) -> ClusterPolicy:
        return self._views.policy

    def owners(self, mailbox: str) -> tuple[bytes, ...] | None:
        """The mailbox's owners as this node sees them, or None when WEP replication is off."""
        return self._ctx.view.owners(mailbox)

    def should_hold(self, dataset: str, key: str) -> bool:
        if not lookup_dataset(dataset).replicated:
            return True
        if dataset == WEB_MESSENGER and not self.policy.wep_replication:
            return True  # replication off: a mailbox stays where it was written
        return self._ctx.view.holds(self.node_id, dataset, key)

    def withheld_from_peers(self) -> dict[bytes, dict[str, int]]:
        """Per live peer, the records this node holds and withholds from it, by reason."""
        return withheld_by_peer(self._ctx.view, self.store, self._ctx.withheld)

    def last_heard(self, node_id: bytes) -> float | None:
        return self._last_heard.get(node_id)

    def quarantined(self, now: float) -> bool:
        """Judged on the wall clock (last sync against the tombstone horizon); `now` is
        taken, as by every call of the driver's API, and not needed."""
        return self.lifecycle.quarantined()

    def statistics(self) -> dict[str, int]:
        stats = dict(self._ctx.counters)
        stats.update({f"membership_{k}": v for k, v in self.membership.statistics().items()})
        stats["pushes_pending"] = len(self.replication.pushes)
        stats.update(self.anti_entropy.statistics())
        stats.update(self.authority.statistics())
        return stats

    def admitted(self, node_id: bytes) -> bool:
        """May `node_id` take part in data replication? (An administrator admitted it, or the
        cluster runs open.) For the membership layer and for operators."""
        return self._ctx.view.admitted(node_id)
