"""Benchmark the membership core on virtual time (no sockets, no sleeps).

For each cluster size n, in one seeded VirtualCluster with default LAN settings and 1 ms
one-way latency:
1. join: n cores join through one seed at t = 0; virtual seconds until every member sees
   every member alive;
2. traffic: in the loss-free steady state, over one push-pull interval, messages and bytes
   sent per member per second (and the push-pull share of the bytes).
3. crash: one member crashes; per other member, virtual seconds until it declares it dead
   (median and max over the observers);
4. loss: 5 % of messages are dropped for a while; false suspicions (suspicions that a live
   member's own failed probe started) and false deaths per member-hour.
   Bytes are the canonical CBOR size of each message encoded as nested arrays of its fields
   (what a generic by-type-hint encoding sends, give or take a type tag per message).

Usage: python scripts/bench_membership.py [--json] [--sizes 10,100,1000] [--seed N]
       python scripts/bench_membership.py --real 5,20,50 [--serf] [--json]
With --real, N real agents on 127.0.0.1 instead (scripts/bench_membership_real.py); with
--serf too, N serf agents after each gossipnode cluster, interleaved in one run
(scripts/bench_membership_serf.py), and the ratios of the two. With --netns, the whole run
happens in a network namespace of its own (`unshare --net`, as root), so that the loopback
counters hold the benchmark's packets alone even while other work on the machine uses
127.0.0.1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipnode.config import MembershipConfig
from gossipnode.core.membership import ALIVE, DEAD, push_pull_interval_s
from gossipnode.wire.cbor import encode
from tests.core.membership.virtual_cluster import VirtualCluster

# Virtual seconds of 5 % loss per size: long enough to see rare false suspicions at small n,
# short enough that n = 1000 stays within minutes of wall time.
LOSS_WINDOW_S = {10: 3600.0, 100: 600.0, 1000: 60.0}
# Give up on convergence after this many virtual seconds.
CONVERGE_MAX_S = 600.0


def as_arrays(value: object) -> object:
    if dataclasses.is_dataclass(value):
        return [as_arrays(getattr(value, f.name)) for f in dataclasses.fields(value)]
    if isinstance(value, tuple):
        return [as_arrays(item) for item in value]
    return value


def wire_bytes(message: object) -> int:
    return len(encode([type(message).__name__, as_arrays(message)]))


def everyone_sees_everyone(cores, count: int):
    def condition() -> bool:
        return all(core.counts()[ALIVE] == count for core in cores)

    return condition


def bench(count: int, seed: int) -> dict:
    started = time.perf_counter()
    config = MembershipConfig()
    cluster = VirtualCluster(config, seed, record_changes=False)
    cores = [cluster.add(f"node-{i}", tags={"version": "0.1.0"}) for i in range(count)]
    for core in cores[1:]:
        cluster.join(core, [cores[0].local_member.address])
    converged = cluster.run_until_true(
        everyone_sees_everyone(cores, count), CONVERGE_MAX_S, check_every_s=0.25
    )
    join_s = cluster.now if converged else None

    # Traffic in the steady state: once the join's broadcasts have all been sent and every
    # member made its first push-pull (due within one base interval of its start), over one
    # full push-pull interval for this size, so that each member's swap is counted once.
    cluster.run_until_true(
        lambda: all(core.statistics()["broadcasts_queued"] == 0 for core in cores),
        CONVERGE_MAX_S,
        check_every_s=1.0,
    )
    drained_s = cluster.now
    cluster.run_until(max(cluster.now, config.push_pull_interval_s) + 5.0)
    by_type: Counter[str] = Counter()

    def measure(message: object) -> int:
        size = wire_bytes(message)
        by_type[type(message).__name__] += size
        return size

    cluster.measure = measure
    messages_before, bytes_before = cluster.messages_sent, cluster.bytes_sent
    window_start = cluster.now
    cluster.run_until(cluster.now + push_pull_interval_s(config, count))
    cluster.measure = None
    elapsed_s = cluster.now - window_start
    messages_per_member_s = (cluster.messages_sent - messages_before) / count / elapsed_s
    bytes_per_member_s = (cluster.bytes_sent - bytes_before) / count / elapsed_s
    push_pull_bytes_per_member_s = by_type["PushPull"] / count / elapsed_s

    # Crash detection.
    victim = cores[-1]
    victim_id = victim.local_member.node_id
    observers = cores[:-1]
    cluster.changes = []
    crashed_at = cluster.now
    cluster.crash(victim_id)
    cluster.run_until_true(
        lambda: all(core.states().get(victim_id) == DEAD for core in observers),
        crashed_at + 600.0,
        check_every_s=0.5,
    )
    declared: dict[bytes, float] = {}
    for change in cluster.changes:
        if change.change.node_id == victim_id and change.change.state == DEAD:
            declared.setdefault(change.observer, change.at - crashed_at)
    detection = sorted(declared.values())

    # False suspicions under 5 % loss (the crashed member is long dead and not probed).
    window_s = LOSS_WINDOW_S.get(count, 60.0)
    raised_before = sum(core.statistics()["suspicions_raised"] for core in observers)
    cluster.changes = []
    cluster.loss = 0.05
    cluster.run_until(cluster.now + window_s)
    cluster.loss = 0.0
    raised = sum(core.statistics()["suspicions_raised"] for core in observers) - raised_before
    false_deaths = sum(
        1 for c in cluster.changes if c.change.state == DEAD and c.change.node_id != victim_id
    )
    member_hours = len(observers) * window_s / 3600.0

    return {
        "members": count,
        "join_converged_s": join_s,
        "join_broadcasts_drained_s": drained_s,
        "crash_detection_median_s": statistics.median(detection) if detection else None,
        "crash_detection_max_s": max(detection) if detection else None,
        "crash_detected_by": len(detection),
        "observers": len(observers),
        "loss_window_s": window_s,
        "false_suspicions_per_member_hour": raised / member_hours,
        "false_deaths_per_member_hour": false_deaths / member_hours,
        "traffic_window_s": elapsed_s,
        "messages_per_member_s": messages_per_member_s,
        "bytes_per_member_s": bytes_per_member_s,
        "push_pull_bytes_per_member_s": push_pull_bytes_per_member_s,
        "wall_s": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated cluster sizes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--real", default="", help="comma-separated sizes of real clusters")
    parser.add_argument("--serf", action="store_true",
                        help="with --real: serf agents after each size too, and the ratios")
    parser.add_argument("--netns", action="store_true",
                        help="with --real: run in a network namespace of its own (root)")
    parser.add_argument("--profile", default="", metavar="DIR",
                        help="with --real: run one agent under cProfile, stats to DIR/n<N>.prof")
    arguments = parser.parse_args()
    if arguments.netns:
        run_in_own_network_namespace(parser)
    if arguments.real:
        from scripts.bench_membership_real import bench_real, format_real
        from scripts.bench_membership_serf import bench_serf, format_serf, serf_available

        if arguments.serf and serf_available() is None:
            parser.error("--serf: serf is not installed (Debian: apt-get install serf)")
        real, serf, ratios = [], [], []
        for count in (int(text) for text in arguments.real.split(",")):
            real.append(bench_real(count, profile_dir=arguments.profile or None))
            if not arguments.json:
                print(format_real(real[-1]), flush=True)
            if arguments.serf:
                serf.append(bench_serf(count))
                ratios.append(compare(real[-1], serf[-1]))
                if not arguments.json:
                    print(format_serf(serf[-1]), flush=True)
                    print(format_ratios(ratios[-1]), flush=True)
        if arguments.json:
            document = {"real": real}
            if arguments.serf:
                document |= {"serf": serf, "gossipnode_over_serf": ratios}
            print(json.dumps(document, indent=2))
        return
    results = []
    for count in (int(text) for text in arguments.sizes.split(",")):
        result = bench(count, arguments.seed)
        results.append(result)
        if not arguments.json:
            print(format_result(result), flush=True)
    if arguments.json:
        print(json.dumps({"seed": arguments.seed, "results": results}, indent=2))


def run_in_own_network_namespace(parser: argparse.ArgumentParser) -> None:
    """Run this same command again in a new network namespace with only its loopback
    interface up, and exit with its status."""
    argv = [a for a in sys.argv[1:] if a != "--netns"]
    command = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
               sys.executable, os.path.abspath(__file__), *argv]  # fmt: skip
    try:
        raise SystemExit(subprocess.run(command).returncode)
    except FileNotFoundError as missing:
        parser.error(f"--netns: {missing.filename} not found (util-linux, iproute2)")


# Figures both real benchmarks report, compared as gossipnode's over serf's.
COMPARED = ("join_s", "false_suspicions", "start_cpu_s_median", "idle_rss_mib_median",
            "idle_cpu_per_s_median", "idle_loopback_bytes_per_s_per_agent",
            "idle_loopback_packets_per_s_per_agent", "tag_s", "failure_s", "leave_s")


def compare(ours: dict, serf: dict) -> dict:
    """Each compared figure as (gossipnode, serf, gossipnode / serf); the ratio is None
    where serf's figure is zero or either is missing."""
    rows = {"agents": ours["agents"]}
    for name in COMPARED:
        a, b = ours.get(name), serf.get(name)
        ratio = None if a is None or not b else round(a / b, 2)
        rows[name] = {"gossipnode": a, "serf": b, "ratio": ratio}
    return rows


def format_ratios(rows: dict) -> str:
    parts = [f"{name} {row['gossipnode']} vs {row['serf']}"
             + ("" if row["ratio"] is None else f" ({row['ratio']}x)")
             for name, row in rows.items() if name != "agents"]  # fmt: skip
    return f"gossipnode vs serf, n={rows['agents']}: " + "; ".join(parts)


def format_result(r: dict) -> str:
    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.2f} s"

    return (
        f"n={r['members']}: join converged in {seconds(r['join_converged_s'])} "
        f"(broadcasts drained at {seconds(r['join_broadcasts_drained_s'])}); "
        f"crash detected by {r['crash_detected_by']}/{r['observers']} "
        f"(median {seconds(r['crash_detection_median_s'])}, "
        f"max {seconds(r['crash_detection_max_s'])}); "
        f"5% loss over {r['loss_window_s']:.0f} s: "
        f"{r['false_suspicions_per_member_hour']:.2f} false suspicions and "
        f"{r['false_deaths_per_member_hour']:.2f} false deaths per member-hour; "
        f"{r['messages_per_member_s']:.1f} messages and {r['bytes_per_member_s']:.0f} bytes "
        f"({r['push_pull_bytes_per_member_s']:.0f} in push-pull) per member per second "
        f"over {r['traffic_window_s']:.0f} s; wall {r['wall_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
