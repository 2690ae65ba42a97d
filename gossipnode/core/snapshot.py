"""The node as the shell may see it: a typed, frozen snapshot built by `NodeCore.status`.

`status`, `health`, `info` and `metrics` read only this (and the public queries of
`NodeCore`), never the parts of the core, so the parts can change without the shell.
Times are the driver's monotonic seconds (`now`), except `NodeStatus.synced_at`, which is
wall-clock Unix seconds (it is kept across restarts): compare with `synced_age_s`, not with
`now`. Counters are totals since start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from .catalog import DATASETS
from .cluster_view import DatasetAgreement, RootGroup, RootHolder, StaleRoot
from .context import NodeContext
from .events import Address

if TYPE_CHECKING:
    from .node import NodeCore

__all__ = [
    "DatasetAgreement",
    "DatasetStatus",
    "MemberStatus",
    "NodeStatus",
    "PeerStatus",
    "RootGroup",
    "RootHolder",
    "StaleRoot",
    "build_status",
]


@dataclass(frozen=True, slots=True)
class DatasetStatus:
    name: str
    scope: str
    records: int  # live records, not tombstones
    tombstones: int
    digest: str | None  # hex root of the full digest; None for node-local datasets


@dataclass(frozen=True, slots=True)
class MemberStatus:
    node_id: bytes
    name: str
    address: Address
    state: str  # membership.ALIVE | SUSPECT | DEAD | LEFT
    incarnation: int
    tags: Mapping[str, str]
    is_self: bool
    last_heard: float | None  # when a message from it last arrived; None: never


@dataclass(frozen=True, slots=True)
class PeerStatus:
    node_id: bytes
    name: str
    state: str
    sync: str  # "repairing" | "converged" | "behind" | "unknown"
    synced_at: float | None  # when a session with it last completed
    last_moved_records: int | None  # records that session moved (0: it was in step)
    pending_push_records: int
    refused_from_peer: int
    withheld: Mapping[str, int]  # records withheld from it, by reason
    # Per dataset, from its last completed session: (identical, since when that held).
    datasets: Mapping[str, tuple[bool, float]]


@dataclass(frozen=True, slots=True)
class NodeStatus:
    node_id: bytes
    name: str
    generation: int
    quarantined: bool
    synced_at: float  # wall clock (Unix seconds) of this node's last completed reconciliation
    synced_age_s: float  # wall seconds since then (0 if the wall clock stepped back)
    private_keys_eligible: bool
    datasets: tuple[DatasetStatus, ...]
    members: tuple[MemberStatus, ...]  # every member, this node included, by name
    peers: tuple[PeerStatus, ...]  # every other member, by name
    counters: Mapping[str, int]  # `NodeCore.statistics()`
    session_seconds: float  # total duration of completed reconciliation sessions
    # Per comparable dataset, the members grouped by the digest root they advertise
    # (core/cluster_view.py): which hold identical data, and since when.
    agreement: tuple[DatasetAgreement, ...]


def build_status(core: NodeCore, ctx: NodeContext, now: float) -> NodeStatus:
    store = ctx.store
    datasets = tuple(
        DatasetStatus(
            info.name, info.scope.value, store.count(info.name),
            store.count(info.name, tombstones=True) - store.count(info.name),
            core.digests.root_hex(info.name) if info.replicated else None,
        )
        for info in DATASETS
    )
    everyone = sorted(core.members(), key=lambda m: m.name)
    members = tuple(
        MemberStatus(
            m.node_id, m.name, tuple(m.address), m.state, m.incarnation,
            MappingProxyType(dict(m.tags)), m.node_id == ctx.node_id,
            core.last_heard(m.node_id),
        )
        for m in everyone
    )
    withheld = core.withheld_from_peers()
    peers = []
    for member in everyone:
        if member.node_id == ctx.node_id:
            continue
        sync = core.anti_entropy.peer_sync(member.node_id)
        peers.append(PeerStatus(
            member.node_id, member.name, member.state, sync.state, sync.synced_at,
            sync.last_moved,
            core.replication.pushes.pending_for(member.node_id),
            ctx.refused_from.get(member.node_id, 0),
            MappingProxyType(withheld.get(member.node_id, {})),
            MappingProxyType(sync.datasets),
        ))
    return NodeStatus(
        ctx.node_id, ctx.config.name, core.lifecycle.generation,
        core.lifecycle.quarantined(), core.lifecycle.synced_ms / 1000,
        core.lifecycle.synced_age_ms() / 1000,
        ctx.view.private_keys_eligible(ctx.node_id), datasets, members, tuple(peers),
        MappingProxyType(core.statistics()), core.anti_entropy.session_seconds,
        core.cluster_view.agreement(now),
    )
