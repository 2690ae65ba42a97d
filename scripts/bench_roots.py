"""Benchmark what the digest roots members piggyback cost on the wire (core/membership/
roots.py): simulated clusters of real NodeCores (every message through the wire codec),
bytes per member per second on the wire, idle and under a trickle of writes, with the roots
advertised and (`--compare`) with them switched off in the same session.

    python scripts/bench_roots.py [--nodes 5 20] [--seconds 120] [--writes-per-s 2]
        [--seed 1] [--compare] [--json]

Figures are virtual-time rates, so they do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossipnode.core.membership.roots import RootAdverts
from gossipnode.core.node import NodeCore
from simulations.cluster import Cluster

# Virtual seconds for a new cluster to join and converge before anything is measured.
SETTLE_S = 60.0


def measure(nodes: int, seconds: float, writes_per_s: float, seed: int) -> dict[str, float]:
    cluster = Cluster(NodeCore, nodes=nodes, seed=seed)
    cluster.run_for(SETTLE_S)
    result: dict[str, float] = {}
    for phase, rate in (("idle", 0.0), ("writing", writes_per_s)):
        bytes_before, messages_before = cluster.bytes, cluster.messages
        adverts_before = _adverts(cluster)
        written = 0
        step_s = 1.0 / rate if rate else seconds
        elapsed = 0.0
        while elapsed < seconds:
            if rate:
                node = cluster.nodes[written % nodes]
                cluster.write(node, "groups", f"g{written}", {"n": written})
                written += 1
            cluster.run_for(step_s)
            elapsed += step_s
        per = nodes * seconds
        result[f"{phase}_bytes_per_member_s"] = round((cluster.bytes - bytes_before) / per, 1)
        result[f"{phase}_messages_per_member_s"] = round(
            (cluster.messages - messages_before) / per, 2)
        result[f"{phase}_adverts_per_member_s"] = round(
            (_adverts(cluster) - adverts_before) / per, 3)
    return result


def _adverts(cluster: Cluster) -> int:
    return sum(node.core.statistics().get("membership_roots_sent", 0)
               for node in cluster.nodes if node.core is not None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--writes-per-s", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compare", action="store_true",
                        help="also run with the roots switched off (the cost before them)")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    variants = [("roots", RootAdverts.advert_for)]
    if arguments.compare:
        variants.append(("no roots", lambda self, recipient, entry, now, **_: ()))
    results = []
    original = RootAdverts.advert_for
    try:
        for nodes in arguments.nodes:
            for name, advert_for in variants:
                RootAdverts.advert_for = advert_for  # the benchmark's switch, nothing else
                figures = measure(nodes, arguments.seconds, arguments.writes_per_s,
                                  arguments.seed)
                results.append({"variant": name, "nodes": nodes,
                                "seconds": arguments.seconds,
                                "writes_per_s": arguments.writes_per_s, **figures})
                if not arguments.json:
                    print(f"{name:>8}, {nodes:>3} nodes: idle "
                          f"{figures['idle_bytes_per_member_s']} B/member/s "
                          f"({figures['idle_adverts_per_member_s']} adverts/member/s); "
                          f"{arguments.writes_per_s:g} writes/s: "
                          f"{figures['writing_bytes_per_member_s']} B/member/s "
                          f"({figures['writing_adverts_per_member_s']} adverts/member/s)")
    finally:
        RootAdverts.advert_for = original
    if arguments.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
