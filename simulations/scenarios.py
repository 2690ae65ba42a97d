"""The named scenarios: each is the fault phase of one run, as a short function.

A run (runner.py) builds the cluster, calls the scenario, then heals everything and runs
the liveness phase, which must converge within the scenario's bound. A scenario starts
with a short warm-up (membership forms, nothing is faulty yet), starts the workload, and
then does its faults. Every choice of node comes from `cluster.fault_rng`, so a scenario
is the same run for the same seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from gossipnode.config import NodeConfig

from .cluster import SEED_NODES, Cluster
from .faults import random_faults, random_split, random_subset
from .network import STORMY
from .workload import Workload

__all__ = ["SCENARIOS", "Scenario"]

# Membership forms within a few gossip rounds; five seconds leaves margin at 1,000 members.
WARM_UP_S = 5.0
# The liveness phase must converge within this many virtual seconds after the heal: a few
# anti-entropy rounds (10 s each by default) plus membership settling.
CONVERGENCE_BOUND_S = 120.0


def _keep(config: NodeConfig) -> NodeConfig:
    return config


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    run: Callable[[Cluster], None]
    description: str
    configure: Callable[[NodeConfig], NodeConfig] = _keep
    bound_s: float = CONVERGENCE_BOUND_S


def _begin(cluster: Cluster, *, stormy: bool = True) -> None:
    cluster.run_for(WARM_UP_S)
    cluster.start_workload(Workload(cluster))
    if stormy:
        cluster.network.faults = STORMY


def partition_heal(cluster: Cluster) -> None:
    _begin(cluster)
    a_group, b_group = random_split(cluster.fault_rng, cluster.nodes, 0.5)
    cluster.partition(a_group, b_group)
    cluster.run_for(30.0)


def minority_isolation(cluster: Cluster) -> None:
    _begin(cluster)
    minority = random_subset(cluster.fault_rng, cluster.nodes, 0.2)
    cluster.partition(minority)
    cluster.run_for(30.0)


def flapping_link(cluster: Cluster) -> None:
    _begin(cluster)
    a_group, b_group = random_split(cluster.fault_rng, cluster.nodes, 0.5)
    for flap in range(15):
        # Every third flap is one-way: a asks, b's answers never come back.
        cluster.partition(a_group, b_group, oneway=flap % 3 == 1)
        cluster.run_for(1.0)
        cluster.heal_network()
        cluster.run_for(1.0)


def crash_restart(cluster: Cluster) -> None:
    _begin(cluster)
    victims = random_subset(cluster.fault_rng, cluster.live_nodes(), 0.1)
    for node in victims:
        cluster.crash(node)
    cluster.run_for(15.0)
    for node in victims:
        cluster.restart(node)
    cluster.run_for(10.0)


def rolling_restart(cluster: Cluster) -> None:
    _begin(cluster)
    nodes = list(cluster.nodes)
    # Twenty waves at most, so that 1,000 members restart in 50 s of virtual time.
    wave = max(1, len(nodes) // 20)
    for start in range(0, len(nodes), wave):
        for node in nodes[start : start + wave]:
            cluster.crash(node)
        cluster.run_for(1.0)
        for node in nodes[start : start + wave]:
            cluster.restart(node)
        cluster.run_for(1.5)


def wep_rebalance(cluster: Cluster) -> None:
    _begin(cluster)
    rng = cluster.fault_rng
    cluster.set_policy(rng.choice(cluster.live_nodes()), wep_replicas=3)
    cluster.run_for(10.0)
    wep = [node for node in cluster.live_nodes() if node.config.tags.wep]
    other = [node for node in cluster.live_nodes() if not node.config.tags.wep]
    for node in random_subset(rng, wep, 0.2) if len(wep) > 3 else []:
        cluster.set_tags(node, wep=False)
    for node in random_subset(rng, other, 0.1) if other else []:
        cluster.set_tags(node, wep=True)
    wep = [node for node in cluster.live_nodes() if node.config.tags.wep]
    if len(wep) > 3:
        cluster.crash(rng.choice(wep))
    cluster.run_for(10.0)
    if len(wep) >= 4:
        chosen = random_subset(rng, wep, 0.5)
        cluster.set_policy(rng.choice(cluster.live_nodes()),
                           wep_eligible=sorted(node.name for node in chosen))
    cluster.run_for(10.0)


def private_key_revoke(cluster: Cluster) -> None:
    _begin(cluster)
    rng = cluster.fault_rng
    cluster.run_for(10.0)
    eligible = [node for node in cluster.live_nodes() if cluster.checkers.eligible(node)]
    if len(eligible) >= 3:
        denied = rng.sample(eligible, max(1, len(eligible) // 10))
        cluster.set_policy(rng.choice(cluster.live_nodes()),
                           private_keys=dict.fromkeys(denied, False))
        remaining = [node for node in eligible if node not in denied]
        cluster.set_tags(rng.choice(remaining), private_keys=False)
    cluster.run_for(20.0)


def long_absence(cluster: Cluster) -> None:
    _begin(cluster, stormy=False)
    cluster.run_for(15.0)
    cluster.stop_workload()
    cluster.settle()
    rng = cluster.fault_rng
    absent = rng.choice(cluster.nodes[SEED_NODES:] or cluster.nodes[1:])
    cluster.crash(absent)
    writers = [node for node in cluster.live_nodes() if node is not absent]
    shared = [key for key, record in cluster.checkers.acknowledged.items()
              if record.value is not None and key[0] not in ("private_keys", "web_messenger",
                                                             "cluster_policy")]
    for dataset, key in rng.sample(shared, min(len(shared), 10)):
        cluster.delete(rng.choice(writers), dataset, key)
    cluster.settle()
    # Stay away past the tombstone horizon, so the deleted records' tombstones are
    # collected everywhere while the absent node still holds the old values.
    horizon_s = absent.config.replication.tombstone_grace_s
    cluster.run_for(2 * horizon_s + absent.config.replication.anti_entropy_interval_s)
    cluster.restart(absent)
    # A core with a quarantine reports itself quarantined; the operator reseeds it.
    cluster.reseed_if_quarantined(absent)
    cluster.run_for(10.0)


def _short_tombstones(config: NodeConfig) -> NodeConfig:
    # A one-minute horizon, so that a run can outlast it in a few virtual minutes.
    return dataclasses.replace(
        config, replication=dataclasses.replace(config.replication, tombstone_grace_s=60.0)
    )


def churn(cluster: Cluster) -> None:
    _begin(cluster)
    rng = cluster.fault_rng
    for _ in range(10):
        leavers = [node for node in cluster.live_nodes()[SEED_NODES:]]
        if leavers:
            cluster.leave(rng.choice(leavers))
        cluster.add_node()
        cluster.run_for(3.0)


def random_mode(cluster: Cluster) -> None:
    _begin(cluster)
    random_faults(cluster, 60.0)


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("partition-heal", partition_heal, "two halves split for 30 s, then heal"),
        Scenario("minority-isolation", minority_isolation,
                 "a fifth of the members cut off from the rest"),
        Scenario("flapping-link", flapping_link,
                 "a link between two halves fails and recovers every second, some one-way"),
        Scenario("crash-restart", crash_restart, "a tenth of the members crash and restart"),
        Scenario("rolling-restart", rolling_restart, "every member restarts in turn"),
        Scenario("wep-rebalance", wep_rebalance,
                 "WEP replicas, WEP tags and the eligible subset change; mailboxes move"),
        Scenario("private-key-revoke", private_key_revoke,
                 "the policy denies private keys to some members, one member opts out"),
        Scenario("long-absence", long_absence,
                 "a member is away past the tombstone horizon while its records are deleted",
                 configure=_short_tombstones),
        Scenario("churn", churn, "members leave and new members join"),
        Scenario("random", random_mode, "faults drawn from the seed for 60 s"),
    )
}
