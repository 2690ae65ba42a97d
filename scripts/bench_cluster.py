"""Benchmark a local cluster of real agents on 127.0.0.1.

Prints: sustained write throughput accepted at one node (records/s, 1 KiB records, each
acknowledged only once durable, or once committed with `--durability periodic`), for
`--writes` records or for `--burst-s` seconds, and the CPU each agent spent per record
written (ms, from /proc: what a write costs the cluster, whatever else shares the cores)
and the CPU the client processes spent per record (they share the cores too);
replication latency from the acknowledgement at node 0 to visibility at the last member
(p50, p99) for single writes, and again under a paced load of `--rate` writes/s for
`--rate-s` seconds (every `RATE_PROBE_EVERY`th write is looked for at the last member),
with the CPU each agent spent per record at that rate;
time to converge after a partition heals with d records written on each side, and resident
memory per node holding `--memory-records` records (loaded into the stores before the
agents start; RSS read from /proc after start-up), and the false suspicions (a member
suspected by a node it could reach) during the write run. `--writes-only` skips the
partition and the memory runs; its agents then dial each other directly, as members of a
real cluster do, where otherwise every link runs through a proxy of this script (needed to
cut links; it relays every byte in this process, on the same cores as the agents), unless
`--through-proxies` asks for them (to compare with figures measured through them).

With `--heal` it measures a partition under load instead: the nodes split in two halves
(2|3 for five), clients keep writing `--heal-rate` records/s on both sides for
`--heal-hold-s` seconds (long enough for each side to suspect or declare the other dead),
the writes stop and the partition heals; printed are the seconds from the heal until every
member sees every other alive, and until every member has the same digests (per run, their
median and maximum); and the suspicions read from the agents' logs: false ones before the
heal (of a member on the same side, or of anyone before the cut), and those logged after it
(views merging; each refuted at once). The writes stop at the heal, not after it: under a
continuing load no two members agree at any one instant, so "equal" would depend on the
poll's luck. With no write after the heal, each member's set of records only grows towards
the union, so digests read one member after another that are all equal are equal at one
instant too, and stay equal: the time printed is when an operator's `status` would first
show agreement. Every acknowledged write of the partition counts (each side's pushes of its
last writes are still under way at the heal). Also printed, since they do not depend on how
loaded the host is: the TCP payload carried between the agents from the heal to agreement,
the CPU seconds the agents spent together over the same time (from /proc), and how many
links the agents closed after the heal because a peer was not keeping up (each cuts the
sessions running on it). A run slower than 3 s is described: how long after the heal the
agents last disagreed and how many records each held then of each dataset that differed;
with `--keep-slow DIR` the agents' logs of such a run are copied to DIR/run<k>/ to be read
after the fact.

    python scripts/bench_cluster.py [--nodes N] [--writes W] [--clients C] [--d D] [--json]
    python scripts/bench_cluster.py --clients 16 --burst-s 30 --rate 1000 --writes-only
        [--durability fsync|periodic] [--writer loop|thread|process] [--through-proxies]
    python scripts/bench_cluster.py --heal [--nodes 5] [--heal-rate R] [--heal-hold-s S]
        [--heal-runs K] [--keep-slow DIR]
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import json
import math
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local_cluster import LocalCluster

from gossipnode.client import ClientError, ControlClient
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
# Equal digests within this after a heal is the goal; slower runs are reported in detail.
HEAL_TARGET_S = 3.0
# Under --rate, one write in this many is looked for at the last member; the others only
# load the cluster (polling every write would load it more than the writes do).
RATE_PROBE_EVERY = 20
# How often the last member is asked for the probes it has not shown yet.
RATE_POLL_S = 0.002
# A probe not seen at the last member this long after the load stopped fails the run.
RATE_WAIT_S = 30.0
# The bucket bounds of gossipnode_event_loop_lag_seconds, as /metrics lists them.
LAG_BUCKET_LINE = re.compile(r'^gossipnode_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\d+)$')
SUSPECT_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z .*member (\S+) \(.*is suspect$")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process and its running children (an agent's writer
    process, `--writer process`) have spent so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    spent = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # it ended
                spent += cpu_s(int(child))
    return spent


def _burst_writer(socket_path: Path, worker: int, count: int, deadline: float | None,
                  done: Any) -> None:
    """One client process of the throughput run: `count` writes, or until `deadline`."""
    with ControlClient(socket_path) as client:
        i = 0
        while (i < count if deadline is None else time.perf_counter() < deadline):
            client.request("put", dataset="consumers", key=f"w{worker}-{i}",
                           value={"pad": PAD})
            i += 1
    done.put(i)


def _paced_writer(socket_path: Path, worker: int, interval_s: float, stop: Any,
                  acknowledged: Any) -> None:
    """One client process of the paced run: a write every `interval_s` until `stop`; every
    `RATE_PROBE_EVERY`th write's key and acknowledgement time go to `acknowledged`."""
    written = 0
    with ControlClient(socket_path) as client:
        started = time.perf_counter()
        while not stop.is_set():
            wait_s = started + written * interval_s - time.perf_counter()
            if wait_s > 0:
                time.sleep(min(wait_s, 0.01))
                continue
            key = f"r{worker}-{written}"
            client.request("put", dataset="consumers", key=key, value={"pad": PAD})
            if written % RATE_PROBE_EVERY == 0:
                acknowledged.put((key, time.perf_counter()))
            written += 1
    acknowledged.put((None, written))


# Clients run as processes: as threads of this one they would share its interpreter lock
# with the link proxies (local_cluster.py), which then fall behind and delay replication.
_PROCESSES = multiprocessing.get_context("fork")


def children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's children that ended and were waited
    for: the client processes of a run, once joined (the agents run on)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def write_throughput(cluster: LocalCluster, writes: int, clients: int,
                     burst_s: float | None = None) -> tuple[float, list[float], float]:
    """Records per second accepted at node 0 by `clients` concurrent client processes (each
    writes `writes // clients` records, or as many as it can for `burst_s` seconds), the
    CPU milliseconds each agent spent per record meanwhile, and those the client processes
    spent together per record (they share the cores with the agents)."""
    deadline = None if burst_s is None else time.perf_counter() + burst_s
    done = _PROCESSES.Queue()
    pids = [cluster.processes[i].pid for i in cluster.running()]
    cpu_before = [cpu_s(pid) for pid in pids]
    clients_before = children_cpu_s()
    workers = [_PROCESSES.Process(target=_burst_writer, args=(
        cluster.socket_path(0), w, writes // clients, deadline, done)) for w in range(clients)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    total = sum(done.get(timeout=RATE_WAIT_S + (burst_s or 600)) for _ in workers)
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    cpu_ms = [(cpu_s(pid) - before) * 1000 / total
              for pid, before in zip(pids, cpu_before, strict=True)]
    return total / elapsed, cpu_ms, (children_cpu_s() - clients_before) * 1000 / total


def latency_at_rate(cluster: LocalCluster, rate: float, seconds: float,
                    clients: int) -> tuple[float, list[float], list[float]]:
    """Writes paced at `rate` per second at node 0 by `clients` client processes for
    `seconds`; returns the rate reached, for every `RATE_PROBE_EVERY`th write the seconds
    from its acknowledgement until the last member shows it, and the CPU milliseconds each
    agent spent per record written from the first write until the last probe showed (the
    last member's share includes answering the probes). At a paced rate the group commits
    are about as large whatever else loads the host, so this CPU per record compares runs
    better than the burst's, whose batches grow and shrink with the rate reached."""
    stop = _PROCESSES.Event()
    acknowledged_queue = _PROCESSES.Queue()
    workers = [_PROCESSES.Process(target=_paced_writer, args=(
        cluster.socket_path(0), w, clients / rate, stop, acknowledged_queue))
        for w in range(clients)]
    acknowledged: dict[str, float] = {}
    seen: dict[str, float] = {}
    finished = written = 0
    pids = [cluster.processes[i].pid for i in cluster.running()]
    cpu_before = [cpu_s(pid) for pid in pids]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    stopped_at = give_up = None
    with cluster.client(cluster.count - 1) as client:
        while finished < clients or len(seen) < len(acknowledged):
            now = time.perf_counter()
            if stopped_at is None and now >= started + seconds:
                stop.set()
                stopped_at, give_up = now, now + RATE_WAIT_S
            if give_up is not None and now > give_up:
                raise RuntimeError(f"{len(acknowledged) - len(seen)} writes never reached the "
                                   f"last member within {RATE_WAIT_S} s")
            while not acknowledged_queue.empty():
                key, value = acknowledged_queue.get()
                if key is None:
                    finished += 1
                    written += value
                else:
                    acknowledged[key] = value
            # Oldest first, and only until one is missing: pushes arrive in order, and asking
            # for every pending probe on every poll would load the last member more than the
            # writes do once it falls behind.
            for key in sorted(acknowledged, key=acknowledged.__getitem__):
                if key in seen:
                    continue
                try:
                    client.request("get", dataset="consumers", key=key)
                except ClientError:
                    break
                seen[key] = time.perf_counter()
            time.sleep(RATE_POLL_S)
    cpu_ms = [(cpu_s(pid) - before) * 1000 / max(written, 1)
              for pid, before in zip(pids, cpu_before, strict=True)]
    for worker in workers:
        worker.join()
    assert stopped_at is not None
    return (written / (stopped_at - started), [seen[k] - acknowledged[k] for k in acknowledged],
            cpu_ms)


class LoopWatch:
    """The agents' event-loop lag and the loop time their store writes took, per phase.

    At a phase's start and end it reads every agent's lag histogram (/metrics text), the
    seconds its store writes held the loop, and the worst lag and longest store write of
    each of its last 60 seconds (`info`). A phase's p50 and p99 are read from the
    difference of the histograms (interpolated within a bucket, as Prometheus'
    histogram_quantile); its maxima are the largest of the seconds within the phase (its
    last 60 seconds, if longer). It reads only between the phase's client runs: a
    connection more during a run of `CLIENTS_PER_USER_MAX` clients would close one of
    theirs. Agents that do not report their loop (an older build) give None."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.nodes = cluster.running()
        self._start: list[tuple[float, list[tuple[float, int]] | None, float | None]] = []

    def _read(self, node: int) -> tuple[float, list[tuple[float, int]] | None, float | None,
                                        dict[str, Any] | None]:
        """(now, lag buckets, store write seconds, the loop's `info`) of one agent."""
        now = time.perf_counter()
        buckets = []
        for line in self.cluster.request(node, "metrics").splitlines():
            match = LAG_BUCKET_LINE.match(line)
            if match:
                buckets.append((float(match.group(1)), int(match.group(2))))
        info = self.cluster.request(node, "info")
        if "loop" not in info:
            return now, None, None, None
        return now, buckets, info["store"]["write_s_total"], info["loop"]

    def begin(self) -> None:
        self._start = [self._read(n)[:3] for n in self.nodes]

    def end(self) -> dict[str, list[float | None]]:
        """Per node: loop lag p50, p99, max (ms), of a second's worst lag the most that was
        waiting for a CPU (ms), the store's loop ms per second, and its longest write call
        (ms)."""
        result: dict[str, list[float | None]] = {
            "loop_lag_p50_ms": [], "loop_lag_p99_ms": [], "loop_lag_max_ms": [],
            "loop_lag_cpu_wait_max_ms": [], "store_loop_ms_per_s": [],
            "store_write_max_ms": []}
        for i, node in enumerate(self.nodes):
            started_at, buckets_before, store_before = self._start[i]
            ended_at, buckets_after, store_after, loop = self._read(node)
            if buckets_before is None or buckets_after is None or loop is None:
                for values in result.values():
                    values.append(None)
                continue
            counts = [(bound, after - before) for (bound, after), (_, before)
                      in zip(buckets_after, buckets_before, strict=True)]
            result["loop_lag_p50_ms"].append(_bucket_quantile_ms(counts, 0.5))
            result["loop_lag_p99_ms"].append(_bucket_quantile_ms(counts, 0.99))
            # Entry i is the second that began about i seconds ago: those of the phase.
            seconds = math.ceil(ended_at - started_at)
            for name, key in (("loop_lag_max_ms", "lag_max_s_per_second"),
                              ("loop_lag_cpu_wait_max_ms", "lag_cpu_wait_max_s_per_second"),
                              ("store_write_max_ms", "store_write_max_s_per_second")):
                result[name].append(round(max(loop[key][:seconds + 1]) * 1000, 2))
            assert store_before is not None and store_after is not None
            result["store_loop_ms_per_s"].append(
                round((store_after - store_before) * 1000 / (ended_at - started_at), 2))
        return result


def _bucket_quantile_ms(cumulative: list[tuple[float, int]], fraction: float) -> float | None:
    """The `fraction` quantile of a cumulative histogram, linear within its bucket (ms)."""
    total = cumulative[-1][1] if cumulative else 0
    if total == 0:
        return None
    rank = fraction * total
    lower_bound, lower_count = 0.0, 0
    for bound, count in cumulative:
        if count >= rank:
            if bound == float("inf"):
                return round(lower_bound * 1000, 2)  # above every bound: its lowest value
            share = (rank - lower_count) / max(count - lower_count, 1)
            return round((lower_bound + (bound - lower_bound) * share) * 1000, 3)
        lower_bound, lower_count = bound, count
    return None


def percentile_ms(sorted_s: list[float], fraction: float) -> float:
    return round(sorted_s[min(len(sorted_s) - 1, int(len(sorted_s) * fraction))] * 1000, 2)


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


def overflows(cluster: LocalCluster, since: float) -> int:
    """Outbound links the agents closed because the peer was not keeping up (its queue
    full: the sessions on it are cut), as logged since `since` (Unix seconds)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since))
    return sum(1 for name in cluster.names
               for line in (cluster.root / f"{name}.log").read_text(errors="replace").splitlines()
               if line[:19] >= stamp and "is not keeping up; dropping its link" in line)


def all_alive(cluster: LocalCluster) -> bool:
    for i in cluster.running():
        states = {m["name"]: m["state"] for m in cluster.request(i, "members")}
        if any(states.get(name) != "alive" for name in cluster.names):
            return False
    return True


def disagreement(cluster: LocalCluster) -> dict[str, list[int]]:
    """Each dataset whose digest is not the same on every running agent, with the records
    each agent holds of it (in the order of `running()`); empty when all agree."""
    digests = [cluster.digests(i) for i in cluster.running()]
    names = sorted({name for d in digests for name in d})
    return {name: [d.get(name, (0, ""))[0] for d in digests] for name in names
            if len({d.get(name) for d in digests}) > 1}


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
                    time.sleep(min(max(due - time.perf_counter(), 0.0), 0.05))
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
    carried_before = sum(cluster.proxies.bytes_carried.values())
    pids = [cluster.processes[i].pid for i in cluster.running()]
    cpu_before = sum(cpu_s(pid) for pid in pids)
    cluster.heal()
    healed_at = time.perf_counter()
    alive_s = digests_s = None
    carried = 0
    cpu_to_equal = 0.0
    deadline = healed_at + HEAL_TIMEOUT_S
    last_disagreement: tuple[float, dict[str, list[int]]] | None = None
    while (alive_s is None or digests_s is None) and time.perf_counter() < deadline:
        if alive_s is None and all_alive(cluster):
            alive_s = time.perf_counter() - healed_at
        if digests_s is None:
            differing = disagreement(cluster)
            if not differing:
                digests_s = time.perf_counter() - healed_at
                carried = sum(cluster.proxies.bytes_carried.values()) - carried_before
                cpu_to_equal = sum(cpu_s(pid) for pid in pids) - cpu_before
            else:
                last_disagreement = (time.perf_counter() - healed_at, differing)
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
            "records_written": sum(written), "wire_mb_to_equal": carried / 1e6,
            "agents_cpu_s_to_equal": cpu_to_equal,
            "link_overflows_after_heal": overflows(cluster, healed_at_wall),
            "last_disagreement": None if last_disagreement is None else {
                "at_s": round(last_disagreement[0], 2), "records": last_disagreement[1]}}


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
    parser.add_argument("--keep-slow", default="", metavar="DIR",
                        help="with --heal: copy the agents' logs of every run slower than "
                             f"{HEAL_TARGET_S:g} s to DIR/run<k>/")
    parser.add_argument("--burst-s", type=float, default=None,
                        help="write for this many seconds instead of --writes records")
    parser.add_argument("--rate", type=float, default=None,
                        help="also measure replication latency under this many writes/s")
    parser.add_argument("--rate-s", type=float, default=10.0, help="seconds of --rate load")
    parser.add_argument("--durability", choices=("fsync", "periodic"), default=None,
                        help="storage.durability of every agent (default: the agent's)")
    parser.add_argument("--writer", choices=("loop", "thread", "process"), default=None,
                        help="storage.writer of every agent (default: the agent's)")
    parser.add_argument("--through-proxies", action="store_true",
                        help="with --writes-only: links through this script's proxies still")
    parser.add_argument("--writes-only", action="store_true",
                        help="skip the partition and memory runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.heal:
        return heal_main(args)
    extra = FAST
    storage = [f'{key} = "{value}"' for key, value in (("durability", args.durability),
                                                        ("writer", args.writer)) if value]
    if storage:
        extra += "\n[storage]\n" + "\n".join(storage) + "\n"
    proxied = args.through_proxies or not args.writes_only
    result: dict[str, object] = {"nodes": args.nodes, "write_clients": args.clients,
                                 "links": "proxied" if proxied else "direct",
                                 "durability": args.durability or "default",
                                 "writer": args.writer or "default"}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        root = Path(scratch)
        with LocalCluster(root / "run", args.nodes, extra_toml=extra,
                          proxied=proxied) as cluster:
            cluster.start_all()
            cluster.wait_members()
            watch = LoopWatch(cluster)
            burst_started = time.time()
            watch.begin()
            throughput, cpu_ms, client_ms = write_throughput(cluster, args.writes,
                                                             args.clients, args.burst_s)
            burst_loop = watch.end()
            burst_s = time.time() - burst_started
            time.sleep(1)  # the log lines of the burst's last moments
            burst_suspicions = len(suspicions(cluster, burst_started, time.time()))
            result |= {
                "write_records_per_s": round(throughput, 1),
                "write_burst_s": round(burst_s, 1),
                "write_cpu_ms_per_record_per_node": [round(ms, 3) for ms in cpu_ms],
                "write_client_cpu_ms_per_record": round(client_ms, 3),
                "false_suspicions_during_writes": burst_suspicions,
            }
            result |= {f"write_{name}_per_node": values for name, values in burst_loop.items()}
            cluster.wait_converged(timeout_s=300)  # let the burst settle before timing
            latencies = sorted(replication_latency(cluster, args.samples))
            result |= {"replication_latency_p50_ms": percentile_ms(latencies, 0.5),
                       "replication_latency_p99_ms": percentile_ms(latencies, 0.99)}
            if args.rate is not None:
                cluster.wait_converged(timeout_s=300)
                rate_started = time.time()
                watch.begin()
                reached, loaded, rate_cpu_ms = latency_at_rate(cluster, args.rate,
                                                               args.rate_s, args.clients)
                rate_loop = watch.end()
                loaded.sort()
                time.sleep(1)
                result |= {
                    "rate_writes_per_s_asked": args.rate,
                    "rate_writes_per_s_reached": round(reached, 1),
                    "rate_latency_samples": len(loaded),
                    "rate_replication_latency_p50_ms": percentile_ms(loaded, 0.5),
                    "rate_replication_latency_p99_ms": percentile_ms(loaded, 0.99),
                    "rate_cpu_ms_per_record_per_node": [round(ms, 3) for ms in rate_cpu_ms],
                    "rate_false_suspicions": len(suspicions(cluster, rate_started,
                                                            time.time())),
                }
                result |= {f"rate_{name}_per_node": values for name, values in rate_loop.items()}
            if not args.writes_only:
                result |= {"partition_d_per_side": args.d,
                           "converge_after_heal_s": round(partition_heal(cluster, args.d), 2)}
        if not args.writes_only:
            memory = memory_at(root / "memory", args.nodes, args.memory_records)
            result |= {"memory_records": args.memory_records,
                       "rss_mb_per_node_median": round(statistics.median(memory), 1)}
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
        for run in range(args.heal_runs):
            runs.append(heal_under_load(cluster, args.heal_rate, args.heal_hold_s))
            if args.keep_slow and runs[-1]["digests_equal_s"] > HEAL_TARGET_S:
                kept = Path(args.keep_slow) / f"run{run}"
                kept.mkdir(parents=True, exist_ok=True)
                for name in cluster.names:
                    shutil.copy(cluster.root / f"{name}.log", kept / f"{name}.log")
            cluster.wait_members(timeout_s=HEAL_TIMEOUT_S)
    result = {
        "nodes": args.nodes,
        "split": f"{args.nodes // 2}|{args.nodes - args.nodes // 2}",
        "heal_rate_records_per_s": args.heal_rate,
        "partition_s": args.heal_hold_s,
        "heal_all_alive_s_runs": [round(r["all_alive_s"], 2) for r in runs],
        "heal_digests_equal_s_runs": [round(r["digests_equal_s"], 2) for r in runs],
        "heal_all_alive_s_median": round(statistics.median(r["all_alive_s"] for r in runs), 2),
        "heal_all_alive_s_max": round(max(r["all_alive_s"] for r in runs), 2),
        "heal_digests_equal_s_median": round(
            statistics.median(r["digests_equal_s"] for r in runs), 2),
        "heal_digests_equal_s_max": round(max(r["digests_equal_s"] for r in runs), 2),
        "false_suspicions_before_heal": sum(r["false_suspicions"] for r in runs),
        "suspicions_after_heal": sum(r["suspicions_after_heal"] for r in runs),
        "records_written": sum(r["records_written"] for r in runs),
        "heal_wire_mb_to_equal_runs": [round(r["wire_mb_to_equal"], 1) for r in runs],
        # CPU seconds all agents spent from the heal to equal digests: what the heal costs,
        # however loaded the host (the wall-clock figures above stretch with the load).
        "heal_agents_cpu_s_to_equal_runs": [round(r["agents_cpu_s_to_equal"], 2) for r in runs],
        "heal_link_overflows": sum(r["link_overflows_after_heal"] for r in runs),
        # For each run slower than the target: how long after the heal the agents still
        # disagreed, and the records each agent held of each dataset that differed then.
        "heal_slow_runs": [{"run": k, "digests_equal_s": round(r["digests_equal_s"], 2),
                            "last_disagreement": r["last_disagreement"]}
                           for k, r in enumerate(runs) if r["digests_equal_s"] > HEAL_TARGET_S],
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
