"""Benchmark catch-up: how fast a restarted member gets the keys it missed, and how many bytes
that costs on the wire, broken down.

Two real agents on 127.0.0.1 (A and B) start with the same `--keys - --missing` OpenPGP
certificates (`--corpus sequoia`: made with pysequoia; `--corpus gpg`: made with GnuPG, the
corpus of the SKS figures; see scripts/bench_corpus.py), stored as `consumers` records
exactly as `keys import` stores them. B is stopped; A imports `--missing` more keys through
its control socket; B is started again. Printed:

- seconds from B answering on its control socket to B holding every key;
- TCP payload bytes between A and B, both directions, from B's start until B holds every key
  and no reconciliation session is left open on either side (so a session's last messages
  count too), counted by the proxy every link of the local cluster goes through; per
  missing key;
- the same bytes by part, from B's own counters (B was restarted, so they hold exactly its
  traffic with A): handshakes, membership messages, reconciliation ranges, record batches,
  and the framing of every message (length prefix and authentication tag). `unattributed`
  is the proxy's count less B's (messages in flight while the counters were read);
- what one record of the batch costs, field by field: the missing records encoded the way a
  reconciliation turn carries them, and again with one field made constant (key, version,
  value, certificate); the difference is that field's marginal cost per record.

    python scripts/bench_catchup.py [--keys N] [--missing D] [--runs R] [--corpus C] [--json]

Figures are medians over `--runs` restarts of B; each run imports a fresh batch on A, so run k
starts from `--keys + (k - 1) * --missing` keys. The breakdown is the last run's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_corpus import CORPORA, DEFAULT_CACHE_DIR, make_keys
from local_cluster import LocalCluster

from gossipnode.config import ReconcileConfig
from gossipnode.core.reconcile_messages import ReconcileTurn, record_size
from gossipnode.core.records import Record, Version
from gossipnode.openpgp import consumer_value
from gossipnode.runtime.control_api import to_json
from gossipnode.runtime.transport import FRAME_OVERHEAD_BYTES
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import decode_value, encode_value
from gossipnode.wire.peer_frames import FrameWriter
from gossipnode.wire.peer_messages import PEER_MESSAGES

# B must hold every key within this after its restart, or the run fails.
CATCH_UP_TIMEOUT_S = 300.0
# Open sessions must end within this once B holds every key.
SESSION_END_TIMEOUT_S = 30.0
POLL_S = 0.01
A, B = 0, 1
# The corpus is stamped as written by this origin at this time, before the run's writes.
ORIGIN = b"\x07" * 32
CORPUS_WALL_MS = 1_700_000_000_000
# The parts of the traffic, by the message types counted in each.
PARTS = {
    "membership": ("Ping", "Ack", "PingRequest", "Nack", "Gossip", "PushPull"),
    "reconciliation": ("ReconcileOpen", "ReconcileTurn", "ReconcileAbort"),
    "record_batches": ("ReconcileTurn.records", "Push", "PushAck"),
}


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


def sessions_open(cluster: LocalCluster, member: int) -> bool:
    return any(peer["sync"] == "repairing" for peer in cluster.request(member, "status")["peers"])


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(POLL_S)


def traffic(cluster: LocalCluster, member: int) -> dict[str, Any]:
    """A member's transport counters: frame payload bytes by message type (a frame's bytes
    shared among its messages by their encoded sizes), frames, handshake bytes."""
    counters: dict[str, Any] = {"bytes": {}, "frames": 0, "handshake": 0}
    for line in str(cluster.request(member, "metrics")).splitlines():
        name, _, rest = line.partition("{")
        value = int(float(line.rsplit(" ", 1)[1])) if line[:1] != "#" else 0
        if name in ("gossipnode_gossip_bytes_sent_total",
                    "gossipnode_gossip_bytes_received_total"):
            label = rest.split('type="', 1)[1].split('"', 1)[0]
            counters["bytes"][label] = counters["bytes"].get(label, 0) + value
        elif name.split(" ")[0] in ("gossipnode_gossip_frames_sent_total",
                                    "gossipnode_gossip_frames_received_total"):
            counters["frames"] += value
        elif name.startswith("gossipnode_handshake_bytes_total "):
            counters["handshake"] = value
    return counters


def breakdown(counted: dict[str, Any], carried: int) -> dict[str, Any]:
    """Bytes by part (payloads), framing, and what the proxy saw beyond B's counters."""
    sizes = counted["bytes"]
    parts = {"handshake": counted["handshake"]}
    for part, types in PARTS.items():
        parts[part] = sum(sizes.get(name, 0) for name in types)
    known = {name for types in PARTS.values() for name in types}
    parts["other_messages"] = sum(n for name, n in sizes.items() if name not in known)
    parts["framing"] = FRAME_OVERHEAD_BYTES * counted["frames"]
    parts["unattributed"] = carried - sum(parts.values())
    return {"parts": parts, "frames": counted["frames"], "by_type": dict(sorted(sizes.items()))}


def catch_up_once(cluster: LocalCluster, fresh: list[Any], expected: int) -> dict[str, Any]:
    cluster.stop(B)
    with cluster.client(A) as client:
        for parsed in fresh:
            client.request("put", dataset="consumers", key=parsed.fingerprint,
                           value=to_json(consumer_value(parsed)))
    before = cluster.bytes_between(A, B)
    cluster.start(B)  # returns once B answers on its control socket
    ready = time.perf_counter()
    wait_for(lambda: consumers_held(cluster, B) >= expected, CATCH_UP_TIMEOUT_S,
             "B to hold every key")
    seconds = time.perf_counter() - ready
    wait_for(lambda: not sessions_open(cluster, B) and not sessions_open(cluster, A),
             SESSION_END_TIMEOUT_S, "the sessions to end")
    carried = cluster.bytes_between(A, B) - before
    parts = breakdown(traffic(cluster, B), carried)
    return {"seconds": seconds, "bytes": carried, "bytes_per_key": carried / len(fresh),
            "breakdown": parts}


def turn_bytes(records: list[Record], message_bytes_max: int) -> int:
    """Frame payload bytes of `records` in reconciliation turns cut as a turn cuts them,
    sent over one fresh connection (wire/peer_frames.py)."""
    batches: list[list[Record]] = [[]]
    used = 0
    for record in records:
        size = record_size(record)
        if batches[-1] and used + size > message_bytes_max:
            batches.append([])
            used = 0
        batches[-1].append(record)
        used += size
    writer = FrameWriter()
    return sum(
        len(payload)
        for index, batch in enumerate(batches)
        for payload in writer.frames([(PEER_MESSAGES.encode(ReconcileTurn(
            1, 3, index < len(batches) - 1, b"", tuple(batch))), False)])
    )


def without_cert(value: bytes) -> bytes:
    return encode_value({**decode_value(value), "cert": b""})


def record_costs(records: list[Record]) -> dict[str, Any]:
    """Per-record bytes of a batch of `records`, and each field's marginal cost."""
    limit = ReconcileConfig().message_bytes_max
    count = len(records)
    whole = turn_bytes(records, limit)
    constant = Version(CORPUS_WALL_MS, 0, ORIGIN)
    variants = {
        "key": [replace(r, key="k") for r in records],
        "version": [replace(r, version=constant) for r in records],
        "value": [replace(r, value=b"\xa0") for r in records],
        "value_certificate": [replace(r, value=without_cert(r.value or b"\xa0"))
                              for r in records],
    }
    costs = {name: round((whole - turn_bytes(changed, limit)) / count, 1)
             for name, changed in variants.items()}
    costs["value_other_fields"] = round(costs["value"] - costs["value_certificate"], 1)
    costs["batch_and_interactions"] = round(
        whole / count - costs["key"] - costs["version"] - costs["value"], 1)
    certs = [decode_value(r.value or b"\xa0").get("cert", b"") for r in records]
    return {
        "records": count,
        "encoded_bytes_per_record": round(whole / count, 1),
        "raw_value_bytes_per_record": round(sum(len(r.value or b"") for r in records) / count, 1),
        "raw_certificate_bytes_per_record": round(sum(map(len, certs)) / count, 1),
        "marginal_cost_per_record": costs,
    }


def missing_records(cluster: LocalCluster, keys: list[Any]) -> list[Record]:
    """The records of `keys` as B holds them (read once the agents are stopped)."""
    store = SqliteStore(cluster.data_dir(B) / "store.sqlite3")
    try:
        found = [store.get("consumers", parsed.fingerprint) for parsed in keys]
    finally:
        store.close()
    return sorted((r for r in found if r is not None), key=lambda r: r.version)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=6000, help="keys A holds in the end")
    parser.add_argument("--missing", type=int, default=1000, help="keys B misses at restart")
    parser.add_argument("--runs", type=int, default=3, help="restarts of B (median reported)")
    parser.add_argument("--corpus", choices=CORPORA, default="sequoia",
                        help="who made the keys: pysequoia (default) or GnuPG")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help="where GnuPG-made keys are kept between runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 0 < args.missing < args.keys:
        parser.error("--missing must be between 1 and --keys - 1")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    base = args.keys - args.missing
    corpus = make_keys(args.corpus, base, "base", 0, args.cache_dir)
    batches = [make_keys(args.corpus, args.missing, f"run{run}-", base + run * args.missing,
                         args.cache_dir) for run in range(args.runs)]
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
        cluster.stop(A)
        cluster.stop(B)
        costs = record_costs(missing_records(cluster, batches[-1]))
    result = {
        "corpus": args.corpus,
        "keys": args.keys,
        "missing": args.missing,
        "runs": args.runs,
        "catch_up_s_median": round(statistics.median(r["seconds"] for r in runs), 3),
        "catch_up_s_runs": [round(r["seconds"], 3) for r in runs],
        "bytes_per_missing_key_median": round(
            statistics.median(r["bytes_per_key"] for r in runs), 1),
        "bytes_per_missing_key_runs": [round(r["bytes_per_key"], 1) for r in runs],
        "bytes_last_run": runs[-1]["bytes"],
        "breakdown_last_run": runs[-1]["breakdown"],
        "record_batch": costs,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


def print_table(result: dict[str, Any]) -> None:
    for key, value in result.items():
        if not isinstance(value, dict):
            print(f"{key:34} {value}")
    carried = result["bytes_last_run"]
    missing = result["missing"]
    print("bytes of the last run, by part:  bytes   per missing key   share")
    for part, size in result["breakdown_last_run"]["parts"].items():
        print(f"  {part:30} {size:7} {size / missing:12.1f} {100 * size / carried:9.1f} %")
    print(f"  by message type ({result['breakdown_last_run']['frames']} frames in all):")
    for name, size in result["breakdown_last_run"]["by_type"].items():
        print(f"    {name:28} {size:7}")
    batch = result["record_batch"]
    print(f"one record of the batch: {batch['encoded_bytes_per_record']} bytes encoded "
          f"(value {batch['raw_value_bytes_per_record']} raw, certificate "
          f"{batch['raw_certificate_bytes_per_record']} raw); marginal cost per field:")
    for field, size in batch["marginal_cost_per_record"].items():
        print(f"  {field:30} {size:7}")


if __name__ == "__main__":
    sys.exit(main())
