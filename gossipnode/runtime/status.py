"""What `members`, `status`, `info` and `health` report: JSON-ready views of a running agent.

Units are base units (seconds, bytes); keys are snake_case; tags `wep` and `private_keys`
are booleans in every view, as operators filter on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import format_address
from ..core.catalog import DATASETS
from ..core.membership import ALIVE, DEAD, SUSPECT, tags_private_keys, tags_wep
from ..identity import format_node_id, short_id
from .loop_lag import LAG_WINDOW_S
from .trust import grants_of

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["health", "info", "members", "status"]

# Connection drops and disconnects `status` lists, newest last.
RECENT_DROPS_SHOWN = 10
# A drop older than this is history, not news: `status` no longer lists it (the per-kind
# counts keep it). Ten minutes covers "what happened while I was paged".
DROPS_SHOWN_AGE_S_MAX = 600.0
# No sync completed with a live peer for this many anti-entropy intervals: degraded. Three
# rounds each with a random peer should reach one with high probability.
SYNC_LAG_INTERVALS_MAX = 3
# Refused handshakes (wrong secret, no common version) "keep arriving" when at least this
# many came within the window: one is a typo being fixed, a stream is a misconfigured peer.
# A peer that knows nobody retries its seeds every few seconds (join_retry_interval_s) and
# one that does probes every second: 30 s sees several, and health clears 30 s after a fix.
REFUSALS_FOR_HEALTH = 2
REFUSALS_WINDOW_S = 30.0
# Drop kinds that mean a would-be member cannot join us: health pages on them.
REFUSAL_KINDS = ("wrong_secret", "no_common_version")


def _tags(tags: Any) -> dict[str, Any]:
    shown: dict[str, Any] = dict(tags)
    shown["wep"] = tags_wep(tags)
    shown["private_keys"] = tags_private_keys(tags)
    return shown


def members(agent: Agent) -> list[dict[str, Any]]:
    now = agent.clock()
    return [
        {
            "name": member.name,
            "id": format_node_id(member.node_id),
            "short_id": short_id(member.node_id),
            "address": format_address(member.address),
            "state": member.state,
            "incarnation": member.incarnation,
            "tags": _tags(member.tags),
            "grants": grants_of(agent, member.node_id),
            "self": member.is_self,
            "last_seen_s": 0.0 if member.is_self else (
                None if member.last_heard is None
                else round(max(0.0, now - member.last_heard), 1)
            ),
        }
        for member in agent.core.status(now).members
    ]


def status(agent: Agent) -> dict[str, Any]:
    now = agent.clock()
    wall_now = agent.wall_ms() / 1000  # Unix seconds, for times shown as moments
    snapshot = agent.core.status(now)
    return {
        "node": {
            "name": agent.config.name,
            "id": format_node_id(snapshot.node_id),
            "short_id": short_id(snapshot.node_id),
            "address": format_address(agent.listen_address or agent.config.listen),
            "generation": snapshot.generation,
            "quarantined": snapshot.quarantined,
            "quarantine_reason": (
                "last completed sync is older than the tombstone grace period; deleted records "
                "could come back. Run `gossipnode reseed` to discard replicated data and pull "
                "it afresh."
            ) if snapshot.quarantined else None,
            "synced_age_s": round(snapshot.synced_age_s, 1),
            "private_keys_eligible": snapshot.private_keys_eligible,
            "grants": grants_of(agent, snapshot.node_id),
        },
        "datasets": [
            {"name": d.name, "scope": d.scope, "records": d.records,
             "tombstones": d.tombstones, "digest": d.digest}
            for d in snapshot.datasets
        ],
        "peers": [
            {
                "name": peer.name,
                "id": format_node_id(peer.node_id),
                "short_id": short_id(peer.node_id),
                "state": peer.state,
                "sync": peer.sync,
                "sync_age_s": None if peer.synced_at is None
                else round(max(0.0, now - peer.synced_at), 1),
                "last_moved_records": peer.last_moved_records,
                "pending_push_records": peer.pending_push_records,
                "refused_from_peer": peer.refused_from_peer,
                "withheld": dict(peer.withheld),
                "grants": grants_of(agent, peer.node_id),
                # From the last completed session per dataset: identical or not, since when.
                "datasets": {
                    name: {"identical": identical,
                           "since": round(wall_now - max(0.0, now - since), 3),
                           "since_s": round(max(0.0, now - since), 1)}
                    for name, (identical, since) in sorted(peer.datasets.items())
                },
            }
            for peer in snapshot.peers
        ],
        # Per dataset, the members grouped by the digest root they advertise (which hold
        # identical data, since when), as `nodetool describecluster` shows schema versions.
        "cluster": _cluster(snapshot.agreement, now, wall_now),
        # Why recent connections were dropped (a wrong secret, no common protocol version,
        # a bad frame...): what an operator needs when a peer never shows up.
        "connection_drops": _recent_drops(agent, wall_now),
        "connection_drop_counts": dict(sorted(agent.transport_status.drop_counts.items())),
        # Peers this node cut off (every connection, both directions), and why.
        "disconnects": [
            {
                "peer": None if cut.peer is None else format_node_id(cut.peer),
                "short_id": None if cut.peer is None else short_id(cut.peer),
                "address": None if cut.address is None else format_address(cut.address),
                "reason": cut.reason,
                "at": round(cut.wall_ms / 1000, 3),
                "age_s": round(max(0.0, now - cut.at), 1),
                "connections_closed": cut.closed,
            }
            for cut in list(agent.disconnects.recent)[-RECENT_DROPS_SHOWN:]
        ],
    }


def _cluster(agreement: Any, now: float, wall_now: float) -> list[dict[str, Any]]:
    """The core's agreement snapshot with its monotonic moments as wall-clock Unix seconds
    (`since`) and ages (`since_s`), converted here: the core reads no clock."""

    def moment(at: float) -> dict[str, float]:
        age_s = max(0.0, now - at)
        return {"since": round(wall_now - age_s, 3), "since_s": round(age_s, 1)}

    return [
        {
            "dataset": dataset.dataset,
            "agreed": len(dataset.groups) == 1 and not dataset.unknown and not dataset.stale,
            "groups": [
                {"root": group.root, "members": [h.name for h in group.members],
                 "ids": [short_id(h.node_id) for h in group.members],
                 "self": group.includes_self, **moment(group.since)}
                for group in dataset.groups
            ],
            "unknown": [h.name for h in dataset.unknown],
            "stale": [
                {"name": stale.holder.name, "root": stale.root,
                 "heard_s": round(max(0.0, now - stale.heard_at), 1)}
                for stale in dataset.stale
            ],
        }
        for dataset in agreement
    ]


def _recent_drops(agent: Agent, now: float) -> list[dict[str, Any]]:
    """`now` in Unix seconds: the transport stamps drops with the wall clock."""
    recent = [drop for drop in agent.transport_status.timed_drops
              if now - drop.at <= DROPS_SHOWN_AGE_S_MAX]
    return [
        {"peer": drop.peer, "reason": drop.reason, "at": round(drop.at, 3),
         "age_s": round(max(0.0, now - drop.at), 1)}
        for drop in recent[-RECENT_DROPS_SHOWN:]
    ]


def health(agent: Agent) -> dict[str, Any]:
    """Every reason this node needs a human, in a stable order; none means healthy."""
    now = agent.clock()
    snapshot = agent.core.status(now)
    everyone = snapshot.members
    others = [m for m in everyone if not m.is_self]
    alive = [m for m in everyone if m.state == ALIVE]
    reasons = []
    if agent.config.join and not any(m.state in (ALIVE, SUSPECT) for m in others):
        reasons.append("knows no other member although it has seeds "
                       f"({', '.join(format_address(a) for a in agent.config.join)}): "
                       "check the seeds' addresses and the cluster secret")
    reasons.extend(
        f"member {member.name} ({short_id(member.node_id)}) is {member.state}"
        + (f" (`gossipnode force-leave {member.name}` if it is gone for good)"
           if member.state == DEAD else "")
        for member in others
        if member.state in (SUSPECT, DEAD)
    )
    if snapshot.quarantined:
        reasons.append("this node is quarantined: run `gossipnode reseed`")
    drop_times = agent.transport_status.drop_times
    for kind in REFUSAL_KINDS:
        recent = [t for t in drop_times.get(kind, ())  # wall-clock stamps (transport.py)
                  if agent.wall_ms() / 1000 - t <= REFUSALS_WINDOW_S]
        if len(recent) >= REFUSALS_FOR_HEALTH:
            reasons.append(f"{len(recent)} connections refused for {kind.replace('_', ' ')} "
                           f"in the last {REFUSALS_WINDOW_S:.0f} s (see `gossipnode status`)")
    live_peers = {m.node_id for m in others if m.state == ALIVE}
    lag_s_max = SYNC_LAG_INTERVALS_MAX * agent.config.replication.anti_entropy_interval_s
    if live_peers:
        synced = [p.synced_at for p in snapshot.peers
                  if p.node_id in live_peers and p.synced_at is not None]
        since = max(synced, default=agent.started_at)
        if now - since > lag_s_max:
            reasons.append(f"no sync completed with a live peer for {now - since:.0f} s "
                           f"(more than {SYNC_LAG_INTERVALS_MAX} anti-entropy intervals)")
    return {
        "health": "degraded" if reasons else "healthy",
        "reasons": reasons,
        "members_alive": len(alive),
        "members_total": len(everyone),
    }


def info(agent: Agent) -> dict[str, dict[str, Any]]:
    snapshot = agent.core.status(agent.clock())
    stats = snapshot.counters
    transport = agent.transport_status
    return {
        "agent": {
            "name": agent.config.name,
            "version": __version__,
            "uptime_s": round(agent.clock() - agent.started_at, 1),
            "generation": snapshot.generation,
        },
        "membership": {
            "members": len(snapshot.members),
            **{k[len("membership_"):]: v for k, v in sorted(stats.items())
               if k.startswith("membership_")},
        },
        "replication": {k: v for k, v in sorted(stats.items())
                        if not k.startswith("membership_")},
        "wire": {
            "accepted": transport.accepted,
            "authenticated": transport.authenticated,
            "handshakes_completed": transport.handshakes_completed,
            "handshakes_failed": transport.handshakes_failed,
            "evicted": transport.evicted,
            "timed_out": transport.timed_out,
            "over_peer_limit": transport.over_peer_limit,
            "over_connection_limit": transport.over_connection_limit,
            "hello_replays": transport.hello_replays,
            "links": len(agent.links.connected()),
            "link_overflows": agent.links.overflows,
            "dials_saved": agent.links.dials_saved,
            "dials_cancelled": agent.links.dials_cancelled,
            "dials_given_up": agent.links.dials_given_up,
            "messages_dropped": agent.links.dropped_messages,
        },
        "store": {
            "path": str(agent.store.path),
            "durability": agent.config.storage.durability,
            "writer": agent.config.storage.writer_in_use,
            "records": sum(agent.store.count(d.name) for d in DATASETS),
            # Seconds the store's write calls held the event loop, since start.
            "write_s_total": round(agent.store_meter.seconds, 6),
            "write_calls": agent.store_meter.calls,
            "syncs": agent.durability.syncs,
        },
        "loop": _loop(agent),
    }


def _loop(agent: Agent) -> dict[str, Any]:
    """The event loop's lag over the last `LAG_WINDOW_S` (how late a timer, a probe's
    included, fired), and the share of that time the store's writes held the loop."""
    recent = agent.loop_lag.recent()
    return {
        "window_s": LAG_WINDOW_S,
        "lag_p50_s": round(recent["p50_s"], 6),
        "lag_p99_s": round(recent["p99_s"], 6),
        "lag_max_s": round(recent["max_s"], 6),
        "lag_samples": recent["samples"],
        "store_write_s_per_s": round(recent["store_write_s_per_s"], 6),
        # The worst lag and the longest store write call of each of the last
        # `SECONDS_KEPT` seconds, newest first (entry i: the second that began about i
        # seconds ago).
        "lag_max_s_per_second": [round(v, 6) for v in agent.loop_lag.per_second.by_age()],
        # Of each second's worst lag, the most that was the loop's thread waiting for a CPU
        # (every CPU busy: not the loop's doing), and that wait since start.
        "lag_cpu_wait_max_s_per_second": [
            round(v, 6) for v in agent.loop_lag.cpu_wait_per_second.by_age()],
        "cpu_wait_s_total": round(agent.loop_lag.cpu_wait_s, 6),
        "store_write_max_s_per_second": [round(v, 6)
                                         for v in agent.store_meter.longest.by_age()],
    }
