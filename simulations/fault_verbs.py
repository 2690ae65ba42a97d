"""The link and disk fault verbs of the scenario DSL: stall, unstall, slow, cut,
fail_storage, slow_storage. Mixed into `Cluster`; the network does the work (network.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .node import SimNode

if TYPE_CHECKING:
    from .clock import EventQueue
    from .network import Network

__all__ = ["FaultVerbs"]


class FaultVerbs:
    """Mixed into `Cluster`, which provides the attributes declared here."""

    network: Network
    queue: EventQueue

    def stall(self, source: SimNode, target: SimNode) -> None:
        """Nothing moves from source to target until `unstall` (the link stays up)."""
        self.network.stall(source.index, target.index)

    def unstall(self, source: SimNode, target: SimNode) -> None:
        self.network.unstall(source.index, target.index)

    def slow(self, a: SimNode, b: SimNode, factor: float) -> None:
        """The link between a and b runs `factor` times slower (1.0 restores it)."""
        self.network.slow(a.index, b.index, factor)

    def cut(self, a: SimNode, b: SimNode) -> None:
        """Reset the connection between a and b: both queues lost, both ends told."""
        self.network.cut(a.index, b.index)

    def fail_storage(self, node: SimNode, seconds: float) -> None:
        """The node's disk fails every record write for `seconds`: client writes are
        refused, and a replicated write stops the node (fail-stop, as the agent does)."""
        node.store.failing = True
        self.queue.push(self.queue.now + seconds, "disk", node.index)

    def slow_storage(self, node: SimNode, sync_s: float) -> None:
        """Each group commit of the node takes `sync_s` (its writes queue up meanwhile)."""
        node.sync_s = sync_s
