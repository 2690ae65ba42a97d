"""Benchmark one anti-entropy session between two in-process replicas.

    python scripts/bench_reconcile.py --n 1000000 --d 1000 [--dist uniform|recent]
        [--record-bytes 512] [--json]
    python scripts/bench_reconcile.py            # the whole grid, one process per row

What it builds: n records written one after another (wall time 1 ms apart, 40-hex-character
keys like PGP fingerprints), held by two replicas that differ in d records. d counts the
records in the symmetric difference of the two replicas' (key, version) sets: d/20 keys carry
a different version on each side (two differing records each), the rest is missing on one
side, half on each. With --dist uniform the differing writes are drawn at random among all
writes; with --dist recent they are the newest writes (replication lag after a partition).
d >= n means one side is empty. Values are random bytes of --record-bytes, drawn from a pool
of 1024 so that two replicas of a million records fit in memory (each record still has its
own key, version and leaf digest).

What it measures: one session, the initiator A and the responder B in one process, records
applied to the receiving replica (store dict and digest) as they arrive. Message bytes come
from `message_size`, the exact canonical CBOR size of the message's plain-tuple rendering;
the first messages of each session are also encoded with `wire.cbor.encode` and must agree.
record_bytes is the encoded size of the records moved (dataset, key, value, version);
overhead_bytes is everything else. build_s (wall), build_cpu_s (this process's CPU time,
which a loaded machine distorts less) and digest_bytes_per_record are for one replica's
digest (range sums and coded cells): the bytes it holds (`Digest.held_bytes`, by
sys.getsizeof), and, as
build_rss_bytes_per_record, the process's RSS growth while building it (which includes the
sort's transient tuples that the allocator keeps).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipnode.config import LimitsConfig, ReconcileConfig
from gossipnode.core.merkle import Digest
from gossipnode.core.reconcile import ReconcileSession
from gossipnode.core.reconcile_messages import message_size, record_size, render
from gossipnode.core.records import Record, Version, wins
from gossipnode.wire.cbor import encode

DATASET = "consumers"
ORIGINS = (b"\x0a" * 32, b"\x0b" * 32)
START_MS = 1_700_000_000_000
VALUE_POOL = 1024
ENCODE_CHECKS = 16  # messages per direction cross-checked against the real CBOR encoder


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def make_replicas(n: int, d: int, dist: str, record_bytes: int, seed: int):
    rng = random.Random(seed)
    pool = [rng.randbytes(record_bytes) for _ in range(VALUE_POOL)]

    def write(index: int, key: str, origin: int) -> Record:
        value = pool[rng.randrange(VALUE_POOL)]
        return Record(DATASET, key, value, Version(START_MS + index, 0, ORIGINS[origin]))

    keys = [f"{rng.getrandbits(160):040x}" for _ in range(n)]
    if d >= n:
        a = {key: write(i, key, 0) for i, key in enumerate(keys)}
        return a, {}
    conflicts = d // 20
    missing = d - 2 * conflicts
    # Write indices that differ: the newest, or drawn at random.
    differing = missing + conflicts
    chosen = list(range(n - differing, n)) if dist == "recent" else rng.sample(range(n), differing)
    rng.shuffle(chosen)
    only_a = set(chosen[: missing // 2])
    only_b = set(chosen[missing // 2 : missing])
    conflicted = chosen[missing:]
    a: dict[str, Record] = {}
    b: dict[str, Record] = {}
    for index, key in enumerate(keys):
        if index in only_a:
            a[key] = write(index, key, 0)
        elif index in only_b:
            b[key] = write(index, key, 1)
        else:
            a[key] = b[key] = write(index, key, 0)
    for index in conflicted:
        key = keys[index]
        # Both sides rewrote the key: B a moment after A (recent), or at some other random
        # time (uniform). Either way each side holds a version the other lacks.
        other = index + 1 if dist == "recent" else rng.randrange(n)
        a[key] = write(index, key, 0)
        b[key] = write(other, key, 1)
    return a, b


class Replica:
    def __init__(self, records: dict[str, Record], digest: Digest) -> None:
        self.records = records
        self.digest = digest

    def apply(self, record: Record) -> None:
        current = self.records.get(record.key)
        if wins(record, current):
            self.records[record.key] = record
            self.digest.replace(current, record)


def run(n: int, d: int, dist: str, record_bytes: int, seed: int) -> dict[str, object]:
    config, limits = ReconcileConfig(), LimitsConfig()
    a_records, b_records = make_replicas(n, d, dist, record_bytes, seed)
    before = rss_bytes()
    started, started_cpu = time.perf_counter(), time.process_time()
    a = Replica(a_records, Digest.build(DATASET, a_records.values()))
    build_s = time.perf_counter() - started
    build_cpu_s = time.process_time() - started_cpu
    digest_bytes = rss_bytes() - before
    b = Replica(b_records, Digest.build(DATASET, b_records.values()))
    expected = dict(a_records)
    for key, record in b_records.items():
        if wins(record, expected.get(key)):
            expected[key] = record
    # d: records in the symmetric difference of the (key, version) sets; keys_differing: the
    # keys whose winner one side lacks (the fewest records any protocol must move).
    differing = sum(1 for key, record in a_records.items() if b_records.get(key) != record) + sum(
        1 for key, record in b_records.items() if a_records.get(key) != record
    )
    keys_differing = sum(
        (a_records.get(key) != record) + (b_records.get(key) != record)
        for key, record in expected.items()
    )

    rng = random.Random(seed)
    started = time.perf_counter()
    checking = 0.0
    initiator = ReconcileSession.initiate(1, a.digest, a.records.get, config, limits, rng, 0.0)
    opening = initiator.messages_to_send()
    responder = ReconcileSession.respond(opening[0], b.digest, b.records.get, config, limits, 0.0)
    sent = [message_size(opening[0]), 0]
    checked = [0, 0]
    moved = [0, 0]
    record_total = 0
    turns = 1
    sides = [(initiator, a), (responder, b)]
    speaker = 1
    while turns <= 2 * config.rounds_max + 2:
        session = sides[speaker][0]
        peer, peer_replica = sides[1 - speaker]
        batch = session.messages_to_send(64)
        if not batch:
            break
        turns += 1
        while batch:
            for message in batch:
                size = message_size(message)
                if checked[speaker] < ENCODE_CHECKS:
                    mark = time.perf_counter()
                    assert len(encode(render(message))) == size
                    checked[speaker] += 1
                    checking += time.perf_counter() - mark
                sent[speaker] += size
                peer.receive(message, 0.0)
                for record in peer.take_received_records():
                    moved[speaker] += 1
                    record_total += record_size(record)
                    peer_replica.apply(record)
            batch = session.messages_to_send(64)
        speaker = 1 - speaker
    reconcile_s = time.perf_counter() - started - checking
    converged = (
        initiator.done
        and responder.done
        and a.records == expected
        and b.records == expected
        and a.digest.root == b.digest.root
    )
    total = sum(sent)
    overhead = total - record_total
    return {
        "n": n,
        "d": differing,
        "keys_differing": keys_differing,
        "dist": dist,
        "round_trips": math.ceil(turns / 2),
        "bytes_a_to_b": sent[0],
        "bytes_b_to_a": sent[1],
        "bytes_total": total,
        "record_bytes": record_total,
        "overhead_bytes": overhead,
        "overhead_per_diff": round(overhead / differing, 1) if differing else None,
        "records_transferred": sum(moved),
        "converged": converged,
        "build_s": round(build_s, 3),
        "build_cpu_s": round(build_cpu_s, 3),
        "digest_bytes_per_record": round(a.digest.held_bytes() / max(1, len(a_records)), 1),
        "build_rss_bytes_per_record": round(digest_bytes / max(1, len(a_records)), 1),
        "reconcile_s": round(reconcile_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


COLUMNS = [
    ("n", 8), ("d", 8), ("dist", 8), ("round_trips", 4), ("bytes_a_to_b", 11),
    ("bytes_b_to_a", 11), ("record_bytes", 11), ("overhead_bytes", 10),
    ("overhead_per_diff", 8), ("records_transferred", 8), ("converged", 5), ("build_s", 7),
    ("build_cpu_s", 7), ("digest_bytes_per_record", 6), ("reconcile_s", 8), ("peak_rss_mb", 7),
]  # fmt: skip
HEADERS = {
    "round_trips": "rt", "bytes_a_to_b": "a->b B", "bytes_b_to_a": "b->a B",
    "record_bytes": "record B", "overhead_bytes": "ovh B", "overhead_per_diff": "ovh/d",
    "records_transferred": "moved", "converged": "ok", "digest_bytes_per_record": "dg B/r",
    "build_cpu_s": "cpu s",
    "reconcile_s": "recon s", "peak_rss_mb": "rss MB",
}  # fmt: skip


def print_header() -> None:
    print(" ".join(f"{HEADERS.get(name, name):>{width}}" for name, width in COLUMNS), flush=True)


def grid(record_bytes: int, seed: int, sizes: list[int]) -> None:
    print_header()
    for n in sizes:
        for dist in ("uniform", "recent"):
            ds = sorted({d for d in (0, 1, 10, 100, 1000, 10_000, n) if d <= n})
            for d in ds:
                command = [sys.executable, __file__, "--n", str(n), "--d", str(d), "--dist",
                           dist, "--record-bytes", str(record_bytes), "--seed", str(seed),
                           "--json"]  # fmt: skip
                output = subprocess.run(command, capture_output=True, text=True, check=True)
                row = json.loads(output.stdout)
                print(" ".join(f"{row[name]!s:>{width}}" for name, width in COLUMNS), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int)
    parser.add_argument("--d", type=int)
    parser.add_argument("--dist", choices=("uniform", "recent"), default="uniform")
    parser.add_argument("--record-bytes", type=int, default=512)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--grid-sizes", default="10000,100000,1000000")
    args = parser.parse_args()
    if args.n is None and args.d is None:
        grid(args.record_bytes, args.seed, [int(x) for x in args.grid_sizes.split(",")])
        return
    if args.n is None or args.d is None:
        parser.error("give both --n and --d, or neither for the whole grid")
    row = run(args.n, args.d, args.dist, args.record_bytes, args.seed)
    if args.json:
        print(json.dumps(row))
    else:
        for name, value in row.items():
            print(f"{name:>24}: {value}")


if __name__ == "__main__":
    main()
