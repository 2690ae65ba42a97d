"""Benchmark catch-up: how fast a restarted member gets the keys it missed, and how many bytes
that costs on the wire.

Two real agents on 127.0.0.1 (A and B) start with the same `--keys - --missing` OpenPGP
certificates (Ed25519 with a Cv25519 encryption subkey, made with pysequoia, stored as
`consumers` records exactly as `keys import` stores them). B is stopped; A imports
`--missing` more keys through its control socket; B is started again. Printed:

- seconds from B answering on its control socket to B holding every key;
- TCP payload bytes between A and B over that time (handshake, membership and replication
  included; counted by the proxy every link of the local cluster goes through), per missing
  key.

    python scripts/bench_catchup.py [--keys N] [--missing D] [--runs R] [--json]

Figures are medians over `--runs` restarts of B; each run imports a fresh batch on A, so run k
starts from `--keys + (k - 1) * --missing` keys.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local_cluster import LocalCluster

from gossipnode.core.records import Record, Version
from gossipnode.openpgp import consumer_value, generate_key, split_keys
from gossipnode.runtime.control_api import to_json
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import encode_value

# B must hold every key within this after its restart, or the run fails.
CATCH_UP_TIMEOUT_S = 300.0
POLL_S = 0.01
A, B = 0, 1
# The corpus is stamped as written by this origin at this time, before the run's writes.
ORIGIN = b"\x07" * 32
CORPUS_WALL_MS = 1_700_000_000_000


def make_keys(count: int, prefix: str) -> list[Any]:
    keys = []
    for index in range(count):
        armored = generate_key(f"{prefix} {index} <{prefix}{index}@example.org>",
                               with_secret=False)
        (parsed,) = split_keys(armored)
        keys.append(parsed)
    return keys


def preload(cluster: LocalCluster, keys: list[Any]) -> None:
    """The same records on both members, written into the stores before the agents start."""
    records = [
        Record("consumers", parsed.fingerprint, encode_value(consumer_value(parsed)),
               Version(CORPUS_WALL_MS + index, 0, ORIGIN))
        for index, parsed in enumerate(keys)
    ]
    for member in (A, B):
        store = SqliteStore(cluster.data_dir(member) / "store.sqlite3")
        store.apply(records)
        store.close()


def consumers_held(cluster: LocalCluster, member: int) -> int:
    status = cluster.request(member, "status")
    return next(d["records"] for d in status["datasets"] if d["name"] == "consumers")


def catch_up_once(cluster: LocalCluster, fresh: list[Any], expected: int) -> dict[str, float]:
    cluster.stop(B)
    with cluster.client(A) as client:
        for parsed in fresh:
            client.request("put", dataset="consumers", key=parsed.fingerprint,
                           value=to_json(consumer_value(parsed)))
    before = cluster.bytes_between(A, B)
    cluster.start(B)  # returns once B answers on its control socket
    ready = time.perf_counter()
    deadline = ready + CATCH_UP_TIMEOUT_S
    while consumers_held(cluster, B) < expected:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"B did not catch up within {CATCH_UP_TIMEOUT_S} s")
        time.sleep(POLL_S)
    seconds = time.perf_counter() - ready
    carried = cluster.bytes_between(A, B) - before
    return {"seconds": seconds, "bytes": carried, "bytes_per_key": carried / len(fresh)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=6000, help="keys A holds in the end")
    parser.add_argument("--missing", type=int, default=1000, help="keys B misses at restart")
    parser.add_argument("--runs", type=int, default=3, help="restarts of B (median reported)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 0 < args.missing < args.keys:
        parser.error("--missing must be between 1 and --keys - 1")
    base = args.keys - args.missing
    corpus = make_keys(base, "base")
    batches = [make_keys(args.missing, f"run{run}-") for run in range(args.runs)]
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-catchup-") as scratch, \
            LocalCluster(Path(scratch), 2) as cluster:
        preload(cluster, corpus)
        cluster.start_all()
        cluster.wait_members()
        cluster.wait_converged(timeout_s=120)
        held = base
        for batch in batches:
            held += len(batch)
            runs.append(catch_up_once(cluster, batch, held))
            cluster.wait_members()
    result = {
        "keys": args.keys,
        "missing": args.missing,
        "runs": args.runs,
        "catch_up_s_median": round(statistics.median(r["seconds"] for r in runs), 3),
        "catch_up_s_runs": [round(r["seconds"], 3) for r in runs],
        "bytes_per_missing_key_median": round(
            statistics.median(r["bytes_per_key"] for r in runs), 1),
        "bytes_per_missing_key_runs": [round(r["bytes_per_key"], 1) for r in runs],
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
