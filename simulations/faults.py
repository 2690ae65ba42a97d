"""Fault primitives composed into bigger moves, and the random mode's fault drawer.

The primitives themselves (partition, isolate, heal, crash, restart, skew, jump, stall,
slow, cut, fail_storage, slow_storage) are methods of the cluster. This module draws
WHICH nodes and WHEN from the cluster's fault stream (`cluster.fault_rng`), so a scenario
and the random mode both replay from the seed.

Bounds that keep a random run meaningful: at most a third of the members are down at
once (a cluster with most members down tests nothing but waiting), two clocks stay
within half of `replication.clock_drift_max_s` of each other (beyond it, stamps are
refused by design, which is a different test), and the liveness phase heals every fault.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .network import STORMY

if TYPE_CHECKING:
    from .cluster import Cluster, SimNode

__all__ = ["random_faults", "random_split", "random_subset"]

# Fraction of members that may be down at once in the random mode.
DOWN_FRACTION_MAX = 1 / 3
# Seconds between two random faults: drawn uniformly in this range.
FAULT_GAP_S = (1.0, 5.0)
# A stalled link stays stalled this long (long enough to fill its queue under a push
# storm, short enough that most stalls end within the fault phase).
STALL_S = (1.0, 20.0)
# A slowed link runs this many times slower: a congested path, not a dead one.
SLOW_FACTOR = (2.0, 200.0)
# A failing disk fails every write for this long: one bad sync up to a replaced disk.
DISK_FAILURE_S = (0.01, 10.0)
# A slow disk's sync: from a busy SSD to a saturated spinning disk.
SLOW_SYNC_S = (0.01, 0.5)


def random_subset(rng: random.Random, nodes: list[SimNode], fraction: float) -> list[SimNode]:
    """About `fraction` of `nodes` (at least one), in a seeded random choice."""
    count = max(1, min(len(nodes), round(len(nodes) * fraction)))
    return rng.sample(nodes, count)


def random_split(rng: random.Random, nodes: list[SimNode],
                 fraction: float) -> tuple[list[SimNode], list[SimNode]]:
    """Split `nodes` in two: about `fraction` of them on the first side."""
    side = random_subset(rng, nodes, fraction)
    chosen = {node.index for node in side}
    return side, [node for node in nodes if node.index not in chosen]


def _skew_max_s(cluster: Cluster) -> float:
    # Two nodes skewed in opposite directions differ by twice this: half the drift limit.
    return cluster.base_config.replication.clock_drift_max_s / 4


def random_faults(cluster: Cluster, duration_s: float) -> None:
    """Run the fault phase for `duration_s`, drawing one fault every few seconds."""
    rng = cluster.fault_rng
    cluster.network.faults = STORMY
    end = cluster.queue.now + duration_s
    while cluster.queue.now < end and not cluster.halted:
        cluster.run_for(min(rng.uniform(*FAULT_GAP_S), end - cluster.queue.now))
        _one_fault(cluster, rng)


def _one_fault(cluster: Cluster, rng: random.Random) -> None:
    nodes = [node for node in cluster.nodes if not node.left]
    live = [node for node in nodes if node.core is not None]
    down = [node for node in nodes if node.core is None]
    kind = rng.choice(("partition", "oneway", "isolate", "heal_network", "crash", "restart",
                       "skew", "jump", "resets", "stall", "slow", "cut", "disk", "policy",
                       "tags"))
    if kind in ("partition", "oneway") and len(nodes) >= 2:
        a_group, b_group = random_split(rng, nodes, rng.uniform(0.1, 0.5))
        if b_group:
            cluster.partition(a_group, b_group, oneway=kind == "oneway")
    elif kind == "isolate" and live:
        cluster.isolate(rng.choice(live))
    elif kind == "heal_network":
        cluster.heal_network()
    elif kind == "crash" and live and len(down) + 1 <= len(nodes) * DOWN_FRACTION_MAX:
        cluster.crash(rng.choice(live))
    elif kind == "restart" and down:
        cluster.restart(rng.choice(down))
    elif kind == "skew" and live:
        cluster.skew(rng.choice(live), rng.uniform(-1, 1) * _skew_max_s(cluster))
    elif kind == "jump" and live:
        node = rng.choice(live)
        jump = rng.uniform(-1, 1) * _skew_max_s(cluster) / 2
        if abs(node.skew_s + jump) <= _skew_max_s(cluster):
            cluster.jump(node, jump)
    elif kind == "resets":
        cluster.network.set_faults(reset_rate=rng.uniform(0, 0.02))
    elif kind in ("stall", "slow", "cut") and len(live) >= 2:
        a, b = rng.sample(live, 2)
        if kind == "stall":
            cluster.stall(a, b)
            cluster.queue.push(cluster.queue.now + rng.uniform(*STALL_S), "call",
                               lambda: cluster.unstall(a, b))
        elif kind == "slow":
            cluster.slow(a, b, rng.uniform(*SLOW_FACTOR))
        else:
            cluster.cut(a, b)
    elif kind == "disk" and live:
        node = rng.choice(live)
        if rng.random() < 0.5:
            cluster.fail_storage(node, rng.uniform(*DISK_FAILURE_S))
        else:
            cluster.slow_storage(node, rng.uniform(*SLOW_SYNC_S))
    elif kind == "policy" and live:
        member = rng.choice(nodes)
        cluster.set_policy(rng.choice(live), private_keys={member: rng.random() < 0.5})
    elif kind == "tags" and live:
        node = rng.choice(live)
        if rng.random() < 0.5:
            cluster.set_tags(node, wep=not node.config.tags.wep)
        else:
            cluster.set_tags(node, private_keys=not node.config.tags.private_keys)
