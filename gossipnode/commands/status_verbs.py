"""Read-only client verbs: members, status, info, health, metrics, monitor.

Each prints an aligned table or consul-style sections, or with `--json` the agent's result
as it came (snake_case keys, base units: seconds, bytes). `health` is made for scripts and
systemd: exit 0 healthy, 1 degraded, 2 agent unreachable, with the reasons on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from ..cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, verb
from ..client import AgentUnreachable
from .connection import add_client_arguments, connect, request, socket_path
from .formatting import (
    format_age,
    format_grants,
    format_tags,
    print_json,
    print_pairs,
    print_sections,
    print_table,
)

# nodetool-style two-letter codes: member state, then sync state. The states are the words
# of the control socket's replies (core/membership/members.py STATES), written out so that
# a client verb does not import the membership code.
STATE_CODES = {"alive": "U", "dead": "D", "suspect": "S", "left": "L"}
SYNC_CODES = {"converged": "C", "behind": "B", "repairing": "R", "unknown": "U"}
STATUS_LEGEND = (
    "Status=Up/Down/Suspect/Left",
    "|/ Sync=Converged/Behind/Repairing/Unknown",
)


def _json_only(help_text: str):
    def arguments(parser: argparse.ArgumentParser) -> None:
        add_client_arguments(parser, json_help=help_text)

    return arguments


# --- members ------------------------------------------------------------------------------------


@verb(
    "members",
    "list the cluster's members as this agent sees them (as `serf members` does)\n\n"
    "Columns: name, node id (short), address, state (alive, suspect, dead, left), tags,\n"
    "seconds since this agent last heard from the member.\n"
    "example: gossipnode members --config /var/lib/gossipnode/node.toml\n"
    "example: GOSSIPNODE_SOCKET=/var/lib/gossipnode/control.sock gossipnode members --json",
    _json_only("a JSON list of members (tags.wep and tags.private_keys are booleans)"),
)
def _members(args: argparse.Namespace) -> int:
    rows = request(args, "members")
    if args.json:
        print_json(rows)
        return EXIT_OK
    print_table(
        ["Name", "ID", "Address", "State", "Grants", "Tags", "Last seen"],
        [
            [
                row["name"] + (" (self)" if row.get("self") else ""),
                row["short_id"],
                row["address"],
                row["state"],
                format_grants(row["grants"]),
                format_tags(row["tags"]),
                format_age(row["last_seen_s"]),
            ]
            for row in rows
        ],
    )
    return EXIT_OK


# --- status -------------------------------------------------------------------------------------


def _withheld_total(withheld: dict[str, int]) -> int:
    return sum(withheld.values())


@verb(
    "status",
    "this node, its datasets and its peers' replication state (as `nodetool status` does)\n\n"
    "Datasets: record count, tombstones and Merkle digest (equal digests = equal data).\n"
    "Peers: a two-letter code (member state, sync state; see the legend), the age of the\n"
    "last completed sync, records it moved, lag (records pushed to the peer and not yet\n"
    "acknowledged) and records withheld from it by policy.\n"
    "Cluster data: per dataset, the members grouped by the digest root each advertises\n"
    "(equal roots = identical data) and since when, as `nodetool describecluster` does;\n"
    "members whose root is unknown or stale are listed apart.\n"
    "example: gossipnode status --config /var/lib/gossipnode/node.toml",
    _json_only("a JSON object: node, datasets (name, records, digest, ...), peers, cluster"),
)
def _status(args: argparse.Namespace) -> int:
    result = request(args, "status")
    if args.json:
        print_json(result)
        return EXIT_OK
    node = result["node"]
    print_pairs([
        ("Node", f"{node['name']} ({node['id']})"),
        ("Address", node["address"]),
        ("Generation", node["generation"]),
        ("Grants", format_grants(node["grants"])),
        ("Private keys", "eligible" if node["private_keys_eligible"] else "not eligible"),
        ("Last sync", format_age(node["synced_age_s"]) + " ago"),
    ])
    if node["quarantined"]:
        print(f"QUARANTINED: {node['quarantine_reason']}")
    print()
    print_table(
        ["Dataset", "Scope", "Records", "Tombstones", "Digest"],
        [
            [d["name"], d["scope"], d["records"], d["tombstones"], d["digest"] or "(local)"]
            for d in result["datasets"]
        ],
    )
    print()
    for line in STATUS_LEGEND:
        print(line)
    print_table(
        ["--", "Name", "ID", "Grants", "Synced", "Moved", "Lag", "Withheld"],
        [
            [
                STATE_CODES.get(peer["state"], "?") + SYNC_CODES.get(peer["sync"], "?"),
                peer["name"],
                peer["short_id"],
                format_grants(peer["grants"]),
                format_age(peer["sync_age_s"]) + (" ago" if peer["sync_age_s"] is not None else ""),
                "-" if peer["last_moved_records"] is None else peer["last_moved_records"],
                peer["pending_push_records"],
                _withheld_total(peer["withheld"]),
            ]
            for peer in result["peers"]
        ],
    )
    if not result["peers"]:
        print("(no peers)")
    _print_cluster_data(result.get("cluster") or [])
    _print_cluster_view(result["peers"])
    drops = result.get("connection_drops") or []
    if drops:
        print()
        print("Recent connection drops (last 10 minutes):")
        for drop in drops:
            age = f"{format_age(drop['age_s'])} ago  " if "age_s" in drop else ""
            print(f"  {age}{drop['peer']}: {drop['reason']}")
    counts = result.get("connection_drop_counts") or {}
    if counts:
        print("Connection drops since start: "
              + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())))
    cuts = result.get("disconnects") or []
    if cuts:
        print()
        print("Recent disconnects (every connection with the peer closed):")
        for cut in cuts:
            print(f"  {format_age(cut['age_s'])} ago  {cut['short_id'] or '?'} "
                  f"{cut['address'] or '?'}: {cut['reason']}")
    return EXIT_OK


def _print_cluster_data(cluster: list[dict[str, Any]]) -> None:
    """Per dataset, the members grouped by the digest root they advertise: equal roots,
    identical data (what `nodetool describecluster` shows as schema versions)."""
    if not cluster:
        return
    print()
    agreed = [d for d in cluster if d["agreed"]]
    if len(agreed) == len(cluster) and len({tuple(d["groups"][0]["members"])
                                            for d in agreed}) == 1:
        members = ", ".join(agreed[0]["groups"][0]["members"])
        since = min(d["groups"][0]["since_s"] for d in agreed)
        print(f"Cluster data: every dataset identical on {members} "
              f"(for at least {format_age(since)})")
        return
    print("Cluster data (digest roots the members advertise; equal roots, equal data):")
    rows = []
    for dataset in cluster:
        name = dataset["dataset"]
        for group in dataset["groups"]:
            rows.append([name, group["root"], ", ".join(group["members"]),
                         format_age(group["since_s"]) + " ago"])
            name = ""
        if dataset["unknown"]:
            rows.append([name, "(unknown)", ", ".join(dataset["unknown"]), "-"])
            name = ""
        for stale in dataset["stale"]:
            rows.append([name, stale["root"], f"{stale['name']} (stale)",
                         f"heard {format_age(stale['heard_s'])} ago"])
            name = ""
    print_table(["Dataset", "Root", "Members", "Since"], rows)


def _print_cluster_view(peers: list[dict[str, Any]]) -> None:
    """Which peers hold the same data as this node, per dataset, and since when (what
    `nodetool describecluster` answers), from each dataset's last completed session."""
    compared = [peer for peer in peers if peer.get("datasets")]
    if not compared:
        return
    print()
    print("Data compared with peers (last completed reconciliation per dataset):")
    for peer in compared:
        datasets = peer["datasets"]
        differing = {n: d for n, d in datasets.items() if not d["identical"]}
        same = {n: d for n, d in datasets.items() if d["identical"]}
        parts = []
        if same:
            since = min(d["since_s"] for d in same.values())
            parts.append(f"identical in {len(same)} datasets (for at least "
                         f"{format_age(since)})")
        for name, entry in sorted(differing.items()):
            parts.append(f"{name} differed at the last sync (first seen "
                         f"{format_age(entry['since_s'])} ago; repaired by it)")
        print(f"  {peer['name']}: " + "; ".join(parts))


# --- info ---------------------------------------------------------------------------------------


@verb(
    "info",
    "the agent's counters in sections (as `consul info` prints them)\n\n"
    "Sections: agent, membership, replication, wire, store.\n"
    "example: gossipnode info --socket /var/lib/gossipnode/control.sock",
    _json_only("a JSON object of sections, each an object of counters"),
)
def _info(args: argparse.Namespace) -> int:
    sections = request(args, "info")
    if args.json:
        print_json(sections)
    else:
        print_sections(sections)
    return EXIT_OK


# --- health -------------------------------------------------------------------------------------


@verb(
    "health",
    "exit 0 when healthy, 1 when degraded, 2 when the agent is unreachable; print why\n\n"
    "Degraded, with every reason listed: seeds configured but no other member known; a\n"
    "member suspect or dead; this node quarantined; connections with a wrong cluster secret\n"
    "or no common protocol version keep arriving; no sync completed with a live peer for\n"
    "3 anti-entropy intervals.\n"
    "example: gossipnode health --config /var/lib/gossipnode/node.toml || alert",
    _json_only('a JSON object: {"health": "healthy"|"degraded"|"unreachable", "reasons": [...]}'),
)
def _health(args: argparse.Namespace) -> int:
    path = socket_path(args)
    try:
        result = request(args, "health")
    except AgentUnreachable as error:
        result = {"health": "unreachable", "reasons": [str(error)], "socket": str(path)}
    code = {"healthy": EXIT_OK, "degraded": EXIT_FAILED}.get(result["health"], EXIT_USAGE)
    if args.json:
        print_json(result)
        return code
    if "members_alive" in result:
        print(f"{result['health']}: {result['members_alive']} of {result['members_total']} "
              "members alive")
    else:
        print(result["health"])
    for reason in result["reasons"]:
        print(f"  {reason}")
    return code


# --- metrics ------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[dict[str, Any]]:
    """The samples of a Prometheus text exposition: name, labels, value (a float)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"not a metrics sample: {line!r}")
        name, labels, value = match.groups()
        samples.append({
            "name": name,
            "labels": {
                key: raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                for key, raw in _LABEL.findall(labels or "")
            },
            "value": float(value),
        })
    return samples


@verb(
    "metrics",
    "the agent's metrics in the Prometheus text format (prefix gossipnode_, base units)\n\n"
    "Feed it to a node_exporter textfile collector, or read it directly.\n"
    "example: gossipnode metrics --config node.toml > /var/lib/node_exporter/gossipnode.prom",
    _json_only("a JSON list of samples: name, labels, value"),
)
def _metrics(args: argparse.Namespace) -> int:
    text = request(args, "metrics")
    if args.json:
        print_json(parse_metrics(text))
    else:
        sys.stdout.write(text)
    return EXIT_OK


# --- monitor ------------------------------------------------------------------------------------


def _monitor_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser, json_help='one JSON object per line: {"log": LINE}')
    parser.add_argument("--lines", type=int, metavar="N",
                        help="stop after N lines (default: until Ctrl-C)")


@verb(
    "monitor",
    "stream the agent's log lines until interrupted (Ctrl-C)\n\n"
    "example: gossipnode monitor --config /var/lib/gossipnode/node.toml",
    _monitor_arguments,
)
def _monitor(args: argparse.Namespace) -> int:
    if args.lines is not None and args.lines < 1:
        from ..cli import UsageError

        raise UsageError("--lines must be at least 1")
    shown = 0
    try:
        with connect(args) as client:
            for reply in client.stream("monitor"):
                line = reply.get("log")
                if not isinstance(line, str):
                    continue
                print(json.dumps({"log": line}) if args.json else line, flush=True)
                shown += 1
                if args.lines is not None and shown >= args.lines:
                    break
    except KeyboardInterrupt:
        pass  # the way to stop a monitor: not an error
    return EXIT_OK
