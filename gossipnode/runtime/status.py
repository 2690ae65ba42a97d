"""What `members`, `status`, `info` and `health` report: JSON-ready views of a running agent.

Units are base units (seconds, bytes); keys are snake_case; tags `wep` and `private_keys`
are booleans in every view, as operators filter on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import format_address
from ..core.catalog import DATASETS
from ..core.membership import ALIVE, SUSPECT, tags_private_keys, tags_wep
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
            "synced_age_s": round(max(0.0, now - snapshot.synced_at), 1),
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
            }
            for peer in snapshot.peers
        ],
        # Why recent connections were dropped (a wrong secret, no common protocol version,
        # a bad frame...): what an operator needs when a peer never shows up.
        "connection_drops": [
            {"peer": peer, "reason": reason}
            for peer, reason in list(agent.transport_status.recent_drops)[-RECENT_DROPS_SHOWN:]
        ],
    }


def health(agent: Agent) -> dict[str, Any]:
    now = agent.clock()
    snapshot = agent.core.status(now)
    everyone = snapshot.members
    alive = [m for m in everyone if m.state == ALIVE]
    reasons = [f"peer {member.name} ({short_id(member.node_id)}) is suspect"
               for member in everyone if member.state == SUSPECT]
    if snapshot.quarantined:
        reasons.append("this node is quarantined: run `gossipnode reseed`")
    lag_s_max = SYNC_LAG_INTERVALS_MAX * agent.config.replication.anti_entropy_interval_s
    if len(alive) > 1 and now - snapshot.synced_at > lag_s_max:
        reasons.append(f"no completed sync for {now - snapshot.synced_at:.0f} s "
                       f"(more than {lag_s_max:.0f} s)")
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
