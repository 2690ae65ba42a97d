"""Shared helpers for the membership core tests: start N cores in a VirtualCluster, join
them through one seed, and wait (in virtual time) for a condition."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gossipnode.config import MembershipConfig
from gossipnode.core.membership import ALIVE, Membership
from tests.core.membership.virtual_cluster import VirtualCluster


def start_cluster(
    count: int,
    *,
    seed: int = 1,
    config: MembershipConfig | None = None,
    tags: Callable[[int], Mapping[str, str]] | None = None,
) -> tuple[VirtualCluster, list[Membership]]:
    """`count` cores joined through the first one; not yet converged."""
    cluster = VirtualCluster(config or MembershipConfig(), seed)
    cores = [
        cluster.add(f"node-{i}", tags=tags(i) if tags else {"version": "0.1.0"})
        for i in range(count)
    ]
    seed_address = cores[0].local_member.address
    for core in cores[1:]:
        cluster.join(core, [seed_address])
    return cluster, cores


def node_id(core: Membership) -> bytes:
    return core.local_member.node_id


def all_alive(cores: list[Membership]) -> Callable[[], bool]:
    expected = {node_id(core): ALIVE for core in cores}

    def condition() -> bool:
        return all(
            len(core.states()) == len(expected) and core.states() == expected for core in cores
        )

    return condition


def converged(cluster: VirtualCluster, cores: list[Membership], within_s: float) -> None:
    """Run until every core sees every core alive; fail if not within `within_s`."""
    assert cluster.run_until_true(all_alive(cores), cluster.now + within_s), {
        core.local_member.name: sorted(core.states().values()) for core in cores
    }
