"""What `members`, `status`, `info` and `health` report: JSON-ready views of a running agent.

Units are base units (seconds, bytes); keys are snake_case; tags `wep` and `private_keys`
are booleans in every view, as operators filter on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import format_address
from ..core.catalog import DATASETS
from ..identity import format_node_id, short_id
from .trust import grants_of

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["health", "info", "members", "status"]

# Connection drops `status` lists, newest last.
RECENT_DROPS_SHOWN = 10
# A peer not synced for this many anti-entropy intervals makes the node "degraded".
SYNC_LAG_INTERVALS_MAX = 6


def _tags(tags: Any) -> dict[str, Any]:
    shown: dict[str, Any] = dict(tags)
    for flag in ("wep", "private_keys"):
        shown[flag] = tags.get(flag) == "true"
    return shown


def members(agent: Agent) -> list[dict[str, Any]]:
    now = agent.clock()
    core = agent.core
    rows = []
    for member in sorted(core.members(), key=lambda m: m.name):
        is_self = member.node_id == core.node_id
        heard = core.last_heard.get(member.node_id)
        rows.append({
            "name": member.name,
            "id": format_node_id(member.node_id),
            "short_id": short_id(member.node_id),
            "address": format_address(member.address),
            "state": member.state,
            "incarnation": member.incarnation,
            "tags": _tags(member.tags),
            "grants": grants_of(agent, member.node_id),
            "self": is_self,
            "last_seen_s": 0.0 if is_self else (
                None if heard is None else round(max(0.0, now - heard), 1)
            ),
        })
    return rows


def status(agent: Agent) -> dict[str, Any]:
    now = agent.clock()
    core = agent.core
    datasets = [
        {
            "name": info_.name,
            "scope": info_.scope.value,
            "records": agent.store.count(info_.name),
            "tombstones": agent.store.count(info_.name, tombstones=True)
            - agent.store.count(info_.name),
            "digest": core.anti_entropy.root_hex(info_.name) if info_.replicated else None,
        }
        for info_ in DATASETS
    ]
    peers = []
    withheld = core.withheld_from_peers()
    for member in sorted(core.members(), key=lambda m: m.name):
        if member.node_id == core.node_id:
            continue
        sync = core.anti_entropy.peer_sync(member.node_id)
        synced_at = sync.get("synced_at")
        peers.append({
            "name": member.name,
            "id": format_node_id(member.node_id),
            "short_id": short_id(member.node_id),
            "state": member.state,
            "sync": sync.get("state", "unknown"),
            "sync_age_s": None if synced_at is None else round(max(0.0, now - synced_at), 1),
            "last_moved_records": sync.get("last_moved", None),
            "pending_push_records": core.pushes.pending_for(member.node_id),
            "refused_from_peer": core.refused_from.get(member.node_id, 0),
            "withheld": withheld.get(member.node_id, {}),
            "grants": grants_of(agent, member.node_id),
        })
    quarantined = core.quarantined(now)
    return {
        "node": {
            "name": agent.config.name,
            "id": format_node_id(core.node_id),
            "short_id": short_id(core.node_id),
            "address": format_address(agent.listen_address or agent.config.listen),
            "generation": core.generation,
            "quarantined": quarantined,
            "quarantine_reason": (
                "last completed sync is older than the tombstone grace period; deleted records "
                "could come back. Run `gossipnode reseed` to discard replicated data and pull "
                "it afresh."
            ) if quarantined else None,
            "synced_age_s": round(max(0.0, now - core.synced_ms / 1000), 1),
            "private_keys_eligible": core.view.private_keys_eligible(core.node_id),
            "grants": grants_of(agent, core.node_id),
        },
        "datasets": datasets,
        "peers": peers,
        # Why recent connections were dropped (a wrong secret, no common protocol version,
        # a bad frame...): what an operator needs when a peer never shows up.
        "connection_drops": [
            {"peer": peer, "reason": reason}
            for peer, reason in list(agent.transport_status.recent_drops)[-RECENT_DROPS_SHOWN:]
        ],
    }


def health(agent: Agent) -> dict[str, Any]:
    now = agent.clock()
    core = agent.core
    everyone = core.members()
    alive = [m for m in everyone if m.state == "alive"]
    reasons = [f"peer {member.name} ({short_id(member.node_id)}) is suspect"
               for member in everyone if member.state == "suspect"]
    if core.quarantined(now):
        reasons.append("this node is quarantined: run `gossipnode reseed`")
    lag_s_max = SYNC_LAG_INTERVALS_MAX * agent.config.replication.anti_entropy_interval_s
    if len(alive) > 1 and now - core.synced_ms / 1000 > lag_s_max:
        reasons.append(f"no completed sync for {now - core.synced_ms / 1000:.0f} s "
                       f"(more than {lag_s_max:.0f} s)")
    return {
        "health": "degraded" if reasons else "healthy",
        "reasons": reasons,
        "members_alive": len(alive),
        "members_total": len(everyone),
    }


def info(agent: Agent) -> dict[str, dict[str, Any]]:
    core = agent.core
    stats = core.statistics()
    transport = agent.transport_status
    return {
        "agent": {
            "name": agent.config.name,
            "version": __version__,
            "uptime_s": round(agent.clock() - agent.started_at, 1),
            "generation": core.generation,
        },
        "membership": {
            "members": len(core.members()),
            **{k[len("membership_"):]: v for k, v in sorted(stats.items())
               if k.startswith("membership_")},
        },
        "replication": {k: v for k, v in sorted(stats.items())
                        if not k.startswith("membership_")},
        "wire": {
            "accepted": transport.accepted,
            "authenticated": transport.authenticated,
            "handshakes_failed": transport.handshakes_failed,
            "evicted": transport.evicted,
            "timed_out": transport.timed_out,
            "over_peer_limit": transport.over_peer_limit,
            "links": len(agent.links.connected()),
            "link_overflows": agent.links.overflows,
            "messages_dropped": agent.links.dropped_messages,
        },
        "store": {
            "path": str(agent.store.path),
            "records": sum(agent.store.count(d.name) for d in DATASETS),
        },
    }
