"""`gossipnode metrics`: the Prometheus text exposition format (version 0.0.4).

Names carry the `gossipnode_` prefix, counters (and only counters) end in `_total`, values
are in base units (seconds), and label values are few (node ids are fine, keys never are).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import __version__
from ..core.membership.members import STATES
from ..core.scopes import HOLDING_STATES
from ..identity import short_id
from .loop_lag import LAG_BUCKETS_S, LAG_WINDOW_S

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["render_metrics"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, kind: str, help_text: str,
            samples: Iterable[tuple[dict[str, str], float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return lines


def render_metrics(agent: Agent) -> str:
    snapshot = agent.core.status(agent.clock())
    stats = snapshot.counters
    states: dict[str, int] = dict.fromkeys(STATES, 0)
    for member in snapshot.members:
        states[member.state] = states.get(member.state, 0) + 1
    lines: list[str] = []
    lines += _family("gossipnode_build_info", "gauge", "Build information.",
                     [({"version": __version__}, 1)])
    lines += _family("gossipnode_members", "gauge", "Members by state.",
                     [({"state": s}, n) for s, n in sorted(states.items())])
    lines += _family("gossipnode_quarantined", "gauge",
                     "1 while this node is quarantined (run `gossipnode reseed`), else 0.",
                     [({}, int(snapshot.quarantined))])
    lines += _family("gossipnode_gossip_messages_sent_total", "counter",
                     "Peer messages sent, by type.",
                     [({"type": t}, n) for t, n in sorted(agent.messages_sent.items())])
    lines += _family("gossipnode_gossip_messages_received_total", "counter",
                     "Peer messages received, by type.",
                     [({"type": t}, n) for t, n in sorted(agent.messages_received.items())])
    transport = agent.transport_status
    lines += _family("gossipnode_gossip_bytes_sent_total", "counter",
                     "Bytes of peer messages sent, by type (a frame's shared by its messages).",
                     [({"type": t}, n) for t, n in sorted(transport.bytes_sent.items())])
    lines += _family("gossipnode_gossip_bytes_received_total", "counter",
                     "Bytes of peer messages received, by type (a frame's shared by its messages).",
                     [({"type": t}, n) for t, n in sorted(transport.bytes_received.items())])
    lines += _family("gossipnode_gossip_frames_sent_total", "counter",
                     "Frames of peer messages sent (each adds a length and a tag).",
                     [({}, transport.frames_sent)])
    lines += _family("gossipnode_gossip_frames_received_total", "counter",
                     "Frames of peer messages received.", [({}, transport.frames_received)])
    lines += _family("gossipnode_handshake_bytes_total", "counter",
                     "Bytes of peer handshakes, both directions.",
                     [({}, transport.handshake_bytes)])
    lines += _family("gossipnode_messages_rejected_total", "counter",
                     "Records or messages refused from peers.",
                     [({"reason": "refused"}, stats.get("records_refused", 0)),
                      ({"reason": "handshake"}, agent.transport_status.handshakes_failed),
                      ({"reason": "handshake_timeout"}, agent.transport_status.timed_out),
                      ({"reason": "over_peer_limit"},
                       agent.transport_status.over_peer_limit),
                      ({"reason": "over_connection_limit"},
                       agent.transport_status.over_connection_limit)])
    lines += _family("gossipnode_handshake_replays_total", "counter",
                     "Replayed hellos answered from the handshake reply cache (no signature, "
                     "no key exchange).",
                     [({}, transport.hello_replays)])
    completed = stats.get("anti_entropy_sessions_completed", 0)
    lines += _family("gossipnode_sync_rounds_total", "counter",
                     "Reconciliation sessions, by result.",
                     [({"result": "completed"}, completed),
                      ({"result": "failed"}, stats.get("anti_entropy_sessions_failed", 0))])
    # A summary without quantiles: _sum and _count give the mean session duration.
    lines += _family("gossipnode_sync_duration_seconds", "summary",
                     "Duration of completed reconciliation sessions.", [])
    lines += [
        f"gossipnode_sync_duration_seconds_sum {round(snapshot.session_seconds, 6)}",
        f"gossipnode_sync_duration_seconds_count {completed}",
    ]
    lines += _family("gossipnode_records", "gauge", "Live records (not tombstones) per dataset.",
                     [({"dataset": d.name}, d.records) for d in snapshot.datasets])
    lines += _family("gossipnode_withheld_records", "gauge",
                     "Records this node holds but withholds from each peer by policy.",
                     [({"peer": short_id(peer.node_id)}, sum(peer.withheld.values()))
                      for peer in sorted(snapshot.peers, key=lambda p: p.node_id)
                      if peer.state in HOLDING_STATES])
    lines += _process_metrics()
    lines += _loop_metrics(agent)
    now = agent.clock()
    lines += _family("gossipnode_peer_pending_push_records", "gauge",
                     "Records pushed to each peer and not yet acknowledged (lag), by name.",
                     [({"peer": p.name}, p.pending_push_records) for p in snapshot.peers])
    lines += _family("gossipnode_peer_sync_age_seconds", "gauge",
                     "Seconds since the last completed reconciliation with each peer.",
                     [({"peer": p.name}, round(max(0.0, now - p.synced_at), 3))
                      for p in snapshot.peers if p.synced_at is not None])
    lines += _family("gossipnode_connection_drops_total", "counter",
                     "Connections dropped, by kind (wrong_secret, no_common_version, ...).",
                     [({"kind": k}, n)
                      for k, n in sorted(agent.transport_status.drop_counts.items())])
    return "\n".join(lines) + "\n"


def _loop_metrics(agent: Agent) -> list[str]:
    """The event loop's lag since start (a histogram) and over the last window, and the
    seconds the store's write calls held the loop (runtime/loop_lag.py)."""
    lag = agent.loop_lag
    lines = ["# HELP gossipnode_event_loop_lag_seconds How late the loop ran the core's "
             "timers (each time it ran them).",
             "# TYPE gossipnode_event_loop_lag_seconds histogram"]
    cumulative = 0
    for bound, count in zip((*LAG_BUCKETS_S, "+Inf"), lag.bucket_counts, strict=True):
        cumulative += count
        lines.append(f'gossipnode_event_loop_lag_seconds_bucket{{le="{bound}"}} {cumulative}')
    lines += [f"gossipnode_event_loop_lag_seconds_sum {round(lag.sum_s, 6)}",
              f"gossipnode_event_loop_lag_seconds_count {lag.samples}"]
    recent = lag.recent()
    lines += _family("gossipnode_event_loop_lag_recent_seconds", "gauge",
                     f"The loop's lag over the last {LAG_WINDOW_S:g} s, by statistic.",
                     [({"stat": stat}, round(recent[f"{stat}_s"], 6))
                      for stat in ("p50", "p99", "max")])
    lines += _family("gossipnode_event_loop_cpu_wait_seconds_total", "counter",
                     "Seconds the loop's thread waited for a CPU (Linux schedstat).",
                     [({}, round(lag.cpu_wait_s, 6))])
    lines += _family("gossipnode_store_write_seconds_total", "counter",
                     "Seconds the store's write calls held the event loop.",
                     [({}, round(agent.store_meter.seconds, 6))])
    lines += _family("gossipnode_store_write_calls_total", "counter",
                     "The store's write calls on the event loop.",
                     [({}, agent.store_meter.calls)])
    lines += _family("gossipnode_store_syncs_total", "counter",
                     "Disk syncs of the store (each covers every commit before it).",
                     [({}, agent.durability.syncs)])
    return lines


def _process_metrics() -> list[str]:
    """The standard process figures (names as Prometheus client libraries give them)."""
    times = os.times()
    lines = _family("process_cpu_seconds_total", "counter", "User and system CPU seconds.",
                    [({}, round(times.user + times.system, 3))])
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
        lines += _family("process_resident_memory_bytes", "gauge", "Resident memory in bytes.",
                         [({}, resident_pages * os.sysconf("SC_PAGE_SIZE"))])
        lines += _family("process_open_fds", "gauge", "Open file descriptors.",
                         [({}, len(os.listdir("/proc/self/fd")))])
    except OSError:  # not Linux: leave out what /proc would have said
        pass
    return lines
