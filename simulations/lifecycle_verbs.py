"""The network and node-lifecycle verbs of the scenario DSL: partition, isolate,
heal_network, heal, crash, restart, skew, jump, leave, add_node, and how a node is created
and started. Mixed into `Cluster` (cluster.py), whose event loop carries them out: a
partition is the network's (network.py), a crash drops the core and keeps the store
(rule 5 of cluster.py), a restart builds a new core on the same store with a higher
incarnation, and `skew` and `jump` move a node's wall clock only (rule 4).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gossipnode.config import NodeConfig, TagsConfig
from gossipnode.core.events import Address
from gossipnode.driving import core_arguments

from .network import CALM
from .node import PORT, SYNC_S, SimNode, sign_function, tag_map, verify
from .tracked_store import TrackedStore

if TYPE_CHECKING:
    from .checkers import Checkers
    from .clock import EventQueue
    from .network import Network

__all__ = ["LEAVE_LINGER_S", "LifecycleVerbs"]

# A leaving node keeps running this long after `leave`, to send its farewell.
LEAVE_LINGER_S = 2.0


class LifecycleVerbs:
    """Mixed into `Cluster`, which provides the attributes and methods declared here."""

    network: Network
    queue: EventQueue
    checkers: Checkers
    nodes: list[SimNode]
    membership_epoch: int
    base_config: NodeConfig
    tags_for: Callable[[int], TagsConfig]
    random: random.Random
    seeds: tuple[Address, ...]
    core_factory: Callable[..., Any]
    _by_address: dict[Address, SimNode]
    _input: Callable[..., Any]
    live_nodes: Callable[[], list[SimNode]]
    stop_workload: Callable[[], None]
    reseed_if_quarantined: Callable[[SimNode], Any]
    _drop_core: Callable[[SimNode], None]
    _command: Callable[..., Any]

    # -- faults ---------------------------------------------------------------------

    def _create_node(self) -> SimNode:
        index = len(self.nodes)
        name = f"n{index:04d}"
        address = (f"10.0.{index // 256}.{index % 256}", PORT)
        tags = self.tags_for(index)
        config = dataclasses.replace(self.base_config, name=name, listen=address, tags=tags)
        node = SimNode(
            index=index,
            name=name,
            node_id=self.random.randbytes(32),
            address=address,
            config=config,
            store=TrackedStore(index, self.checkers),
            rng=random.Random(self.random.getrandbits(64)),
            tags=tag_map(tags),
            created_at=self.queue.now,
        )
        self.nodes.append(node)
        self._by_address[address] = node
        return node

    def _start(self, node: SimNode) -> None:
        seeds = [address for address in self.seeds if address != node.address]
        try:
            node.core = self.core_factory(
                node.config, store=node.store, node_id=node.node_id, rng=node.rng,
                now=self.queue.now, wall_ms=lambda: self._wall_ms(node),
                sign=sign_function(node.node_id), verify=verify, incarnation=node.incarnation,
                **core_arguments(),
            )
        except Exception as error:
            self.checkers.violate("core-error", f"{node.name} failed to start: "
                                  f"{type(error).__name__}: {error}")
            return
        node.crashed_at = None
        node.started_at = self.queue.now
        self._input(node, lambda core, now: core.join(seeds, now))

    def partition(self, a_group: Sequence[SimNode], b_group: Sequence[SimNode] | None = None,
                  *, oneway: bool = False) -> None:
        self.network.partition([n.index for n in a_group],
                               None if b_group is None else [n.index for n in b_group],
                               oneway=oneway)

    def isolate(self, node: SimNode) -> None:
        self.network.isolate(node.index)

    def heal_network(self) -> None:
        """Remove every partition (the fault phase goes on)."""
        self.network.heal()
        self.network.healed_at = self.queue.now

    def heal(self) -> None:
        """End the fault phase: heal every partition, calm the network, stop the
        workload, restart every crashed node and reseed every quarantined one (what an
        operator would do). Clock skews stay."""
        self.stop_workload()
        self.network.calm()
        self.heal_network()
        self.network.faults = CALM
        for node in self.nodes:
            node.store.failing = False
            node.sync_s = SYNC_S
        for node in self.nodes:
            if node.core is None and not node.left:
                self.restart(node)
        for node in self.live_nodes():
            self.reseed_if_quarantined(node)

    def crash(self, node: SimNode) -> None:
        """kill -9: the core and everything in flight to or from it are gone."""
        if node.core is not None:
            self._drop_core(node)

    def restart(self, node: SimNode) -> None:
        assert node.core is None, node.name
        assert not node.left, node.name
        down_s = self.queue.now - (node.crashed_at or self.queue.now)
        node.incarnation += 1
        self.membership_epoch += 1
        self._start(node)
        if node.core is not None:
            self.checkers.on_restart(node, down_s, node.config.replication.tombstone_grace_s)

    def skew(self, node: SimNode, seconds: float) -> None:
        """Set the node's wall clock to run `seconds` ahead of virtual time (behind if < 0).
        Its monotonic clock, and so every timer of it, stays where it is."""
        node.skew_s = seconds

    def jump(self, node: SimNode, seconds: float) -> None:
        """Step the node's wall clock by `seconds` at once (an NTP step, a manual set)."""
        self.skew(node, node.skew_s + seconds)

    def _wall_ms(self, node: SimNode) -> int:
        """The node's wall clock in Unix milliseconds: virtual time plus its skew."""
        return int((self.queue.now + node.skew_s) * 1000)

    def leave(self, node: SimNode) -> None:
        """A graceful leave: the node says goodbye, lingers briefly, and exits for good."""
        if node.core is None or node.left:
            return
        node.left = True
        self.checkers.truth_changed()
        self._command(node, lambda core, now: core.leave(now))
        self.queue.push(self.queue.now + LEAVE_LINGER_S, "exit", (node.index, node.epoch))

    def add_node(self, tags: TagsConfig | None = None) -> SimNode:
        """A new member joins through the seeds."""
        node = self._create_node()
        if tags is not None:
            node.config = dataclasses.replace(node.config, tags=tags)
            node.tags = tag_map(tags)
        self.checkers.truth_changed()
        self._start(node)
        return node
