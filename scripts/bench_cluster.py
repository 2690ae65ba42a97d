"""Benchmark a local cluster of real agents on 127.0.0.1.

Prints: sustained write throughput accepted at one node (records/s, 1 KiB records, each
acknowledged only once durable), replication latency from the acknowledgement at node 0 to
visibility at the last member (p50, p99), time to converge after a partition heals with d
records written on each side, and resident memory per node holding `--memory-records`
records (loaded into the stores before the agents start; RSS read from /proc after start-up),
and the false suspicions (a member suspected by a node it could reach) during the write run.

With `--heal` it measures a partition under load instead: the nodes split in two halves
(2|3 for five), clients keep writing `--heal-rate` records/s on both sides for
`--heal-hold-s` seconds (long enough for each side to declare the other dead), the writes
stop and the partition heals; printed are the seconds from the heal until every member
sees every other alive, and until every member has the same digests; and the suspicions
read from the agents' logs: false ones before the heal (of a member on the same side, or of
anyone before the cut), and those logged after it (views merging; each refuted at once).

    python scripts/bench_cluster.py [--nodes N] [--writes W] [--clients C] [--d D] [--json]
    python scripts/bench_cluster.py --heal [--nodes 5] [--heal-rate R] [--heal-hold-s S]
"""

from __future__ import annotations

import argparse
import calendar
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local_cluster import LocalCluster

from gossipnode.core.records import Record, Version
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import encode_value

FAST = "\n[replication]\nanti_entropy_interval_s = 1.0\n"
PAD = "x" * 1000  # with the key and the map around it, about 1 KiB per record
POLL_S = 0.0005
# How often the heal run looks at members and digests: fine enough for a 3 s target.
HEAL_POLL_S = 0.05
# After the heal, members must see each other alive and agree within this, or the run fails.
HEAL_TIMEOUT_S = 120.0
SUSPECT_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z .*member (\S+) \(.*is suspect$")


def write_throughput(cluster: LocalCluster, writes: int, clients: int) -> float:
    """Records per second accepted at node 0 by `clients` concurrent writers."""
    per_client = writes // clients

    def run(worker: int) -> None:
        with cluster.client(0) as client:
            for i in range(per_client):
                client.request("put", dataset="consumers", key=f"w{worker}-{i}",
                               value={"pad": PAD})

    threads = [threading.Thread(target=run, args=(w,)) for w in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_client * clients / (time.perf_counter() - started)


def replication_latency(cluster: LocalCluster, samples: int) -> list[float]:
    last = cluster.count - 1
    latencies = []
    with cluster.client(0) as writer, cluster.client(last) as reader:
        for i in range(samples):
            key = f"lat{i}"
            writer.request("put", dataset="groups", key=key, value={"i": i})
            acknowledged = time.perf_counter()
            deadline = acknowledged + 30
            while time.perf_counter() < deadline:
                try:
                    reader.request("get", dataset="groups", key=key)
                    break
                except Exception:
                    time.sleep(POLL_S)
            latencies.append(time.perf_counter() - acknowledged)
    return latencies


def partition_heal(cluster: LocalCluster, d: int) -> float:
    half = cluster.count // 2
    left, right = list(range(half)), list(range(half, cluster.count))
    cluster.partition(left, right)
    time.sleep(1)
    for side, node in (("l", left[0]), ("r", right[0])):
        with cluster.client(node) as client:
            for i in range(d):
                client.request("put", dataset="keyservers", key=f"{side}{i}", value={"pad": PAD})
    cluster.heal()
    return cluster.wait_converged(timeout_s=300)


def suspicions(cluster: LocalCluster, since: float, until: float) -> list[tuple[float, int, int]]:
    """(time, observer, suspected) for every suspicion the agents logged in [since, until]."""
    index = {name: i for i, name in enumerate(cluster.names)}
    found = []
    for observer, name in enumerate(cluster.names):
        log = cluster.root / f"{name}.log"
        for line in log.read_text(errors="replace").splitlines():
            match = SUSPECT_LINE.match(line)
            if match and match.group(3) in index:
                moment = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
                moment += int(match.group(2)) / 1000
                if since <= moment <= until:
                    found.append((moment, observer, index[match.group(3)]))
    return found


def all_alive(cluster: LocalCluster) -> bool:
    for i in cluster.running():
        states = {m["name"]: m["state"] for m in cluster.request(i, "members")}
        if any(states.get(name) != "alive" for name in cluster.names):
            return False
    return True


def digests_equal(cluster: LocalCluster) -> bool:
    digests = [cluster.digests(i) for i in cluster.running()]
    return all(d == digests[0] for d in digests)


def heal_under_load(cluster: LocalCluster, rate: float, hold_s: float) -> dict[str, float]:
    """Partition in two halves while writing on both, heal, time all-alive and agreement."""
    half = cluster.count // 2
    left, right = list(range(half)), list(range(half, cluster.count))
    stop = threading.Event()
    written = [0] * cluster.count

    def write(node: int, per_node_rate: float) -> None:
        with cluster.client(node) as client:
            started = time.perf_counter()
            while not stop.is_set():
                due = started + written[node] / per_node_rate
                if time.perf_counter() < due:
                    time.sleep(min(due - time.perf_counter(), 0.05))
                    continue
                client.request("put", dataset="keyservers", key=f"h{node}-{written[node]}",
                               value={"pad": PAD})
                written[node] += 1

    threads = [threading.Thread(target=write, args=(n, rate / cluster.count))
               for n in range(cluster.count)]
    load_started = time.time()
    for thread in threads:
        thread.start()
    time.sleep(2)  # under load before the cut
    cut_at = time.time()
    cluster.partition(left, right)
    time.sleep(hold_s)
    stop.set()
    for thread in threads:
        thread.join()
    healed_at_wall = time.time()
    cluster.heal()
    healed_at = time.perf_counter()
    alive_s = digests_s = None
    deadline = healed_at + HEAL_TIMEOUT_S
    while (alive_s is None or digests_s is None) and time.perf_counter() < deadline:
        if alive_s is None and all_alive(cluster):
            alive_s = time.perf_counter() - healed_at
        if digests_s is None and digests_equal(cluster):
            digests_s = time.perf_counter() - healed_at
        time.sleep(HEAL_POLL_S)
    if alive_s is None or digests_s is None:
        raise RuntimeError(f"no agreement within {HEAL_TIMEOUT_S} s of the heal")
    time.sleep(1)  # let the last log lines of the heal land
    side = {n: 0 for n in left} | {n: 1 for n in right}
    seen = suspicions(cluster, load_started, time.time())
    # Before the heal: a suspicion of a member the observer could reach is false. After
    # it, the two sides' views merge and a suspicion one side held of its own members
    # spreads to the other, to be refuted at once: counted apart.
    false = [(t, a, b) for t, a, b in seen if t < healed_at_wall
             and not (cut_at <= t and side[a] != side[b])]
    merged = [(t, a, b) for t, a, b in seen if t >= healed_at_wall]
    return {"all_alive_s": alive_s, "digests_equal_s": digests_s,
            "false_suspicions": len(false), "suspicions_after_heal": len(merged),
            "records_written": sum(written)}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_at(root: Path, nodes: int, records: int) -> list[float]:
    with LocalCluster(root, nodes, extra_toml=FAST) as cluster:
        origin = b"\x01" * 32
        value = encode_value({"pad": PAD})
        for i in range(nodes):
            store = SqliteStore(cluster.data_dir(i) / "store.sqlite3")
            batch = [Record("consumers", f"user{n:07d}", value, Version(1_700_000_000_000 + n,
                                                                        0, origin))
                     for n in range(records)]
            store.apply(batch)
            store.close()
        cluster.start_all()
        cluster.wait_members()
        cluster.wait_converged(timeout_s=120)
        return [rss_mb(cluster.processes[i].pid) for i in range(nodes)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--writes", type=int, default=2000, help="records for the throughput run")
    parser.add_argument("--clients", type=int, default=4, help="concurrent writers")
    parser.add_argument("--samples", type=int, default=200, help="latency samples")
    parser.add_argument("--d", type=int, default=500, help="records per side in the partition")
    parser.add_argument("--memory-records", type=int, default=100_000)
    parser.add_argument("--heal", action="store_true", help="measure a heal under load only")
    parser.add_argument("--heal-rate", type=float, default=200.0,
                        help="records/s written across all nodes during the partition")
    parser.add_argument("--heal-hold-s", type=float, default=20.0,
                        help="seconds the partition lasts")
    parser.add_argument("--heal-runs", type=int, default=1, help="partitions and heals")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.heal:
        return heal_main(args)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        root = Path(scratch)
        with LocalCluster(root / "run", args.nodes, extra_toml=FAST) as cluster:
            cluster.start_all()
            cluster.wait_members()
            burst_started = time.time()
            throughput = write_throughput(cluster, args.writes, args.clients)
            time.sleep(1)  # the log lines of the burst's last moments
            burst_suspicions = len(suspicions(cluster, burst_started, time.time()))
            cluster.wait_converged(timeout_s=300)  # let the burst settle before timing
            latencies = sorted(replication_latency(cluster, args.samples))
            converge_s = partition_heal(cluster, args.d)
        memory = memory_at(root / "memory", args.nodes, args.memory_records)
    result = {
        "nodes": args.nodes,
        "write_clients": args.clients,
        "write_records_per_s": round(throughput, 1),
        "false_suspicions_during_writes": burst_suspicions,
        "replication_latency_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "replication_latency_p99_ms": round(
            latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
        "partition_d_per_side": args.d,
        "converge_after_heal_s": round(converge_s, 2),
        "memory_records": args.memory_records,
        "rss_mb_per_node_median": round(statistics.median(memory), 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")
    return 0


def heal_main(args: argparse.Namespace) -> int:
    runs = []
    with (tempfile.TemporaryDirectory(prefix="bench-heal-") as scratch,
          LocalCluster(Path(scratch), args.nodes) as cluster):
        cluster.start_all()
        cluster.wait_members()
        for _ in range(args.heal_runs):
            runs.append(heal_under_load(cluster, args.heal_rate, args.heal_hold_s))
            cluster.wait_members(timeout_s=HEAL_TIMEOUT_S)
    result = {
        "nodes": args.nodes,
        "split": f"{args.nodes // 2}|{args.nodes - args.nodes // 2}",
        "heal_rate_records_per_s": args.heal_rate,
        "partition_s": args.heal_hold_s,
        "heal_all_alive_s_runs": [round(r["all_alive_s"], 2) for r in runs],
        "heal_digests_equal_s_runs": [round(r["digests_equal_s"], 2) for r in runs],
        "heal_all_alive_s_max": round(max(r["all_alive_s"] for r in runs), 2),
        "heal_digests_equal_s_max": round(max(r["digests_equal_s"] for r in runs), 2),
        "false_suspicions_before_heal": sum(r["false_suspicions"] for r in runs),
        "suspicions_after_heal": sum(r["suspicions_after_heal"] for r in runs),
        "records_written": sum(r["records_written"] for r in runs),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
