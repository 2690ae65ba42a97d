"""Benchmark a local cluster of real agents on 127.0.0.1.

Prints: sustained write throughput accepted at one node (records/s, 1 KiB records, each
acknowledged only once durable), replication latency from the acknowledgement at node 0 to
visibility at the last member (p50, p99), time to converge after a partition heals with d
records written on each side, and resident memory per node holding `--memory-records`
records (loaded into the stores before the agents start; RSS read from /proc after start-up).

    python scripts/bench_cluster.py [--nodes N] [--writes W] [--d D] [--json]
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        root = Path(scratch)
        with LocalCluster(root / "run", args.nodes, extra_toml=FAST) as cluster:
            cluster.start_all()
            cluster.wait_members()
            throughput = write_throughput(cluster, args.writes, args.clients)
            cluster.wait_converged(timeout_s=300)  # let the burst settle before timing
            latencies = sorted(replication_latency(cluster, args.samples))
            converge_s = partition_heal(cluster, args.d)
        memory = memory_at(root / "memory", args.nodes, args.memory_records)
    result = {
        "nodes": args.nodes,
        "write_records_per_s": round(throughput, 1),
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


if __name__ == "__main__":
    sys.exit(main())
