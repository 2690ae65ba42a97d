"""Benchmark the store's write path in one process, without agents: CPU per record.

Prints (with `--json` as one object):
- `store_cpu_us_per_record`: CPU (user + system, every thread of this process) per record of
  `SqliteStore.apply_changes` with `deferred_sync`, `--batch` records of about 1 KiB a call
  (keys as 16 clients of scripts/bench_cluster.py make them), and one `sync_wal` every
  `--sync-every` calls (1: as the agent's group commit under load; a larger value leaves
  out most of the fsync's CPU, the same in every tree, and with it most of the noise);
  the median of `--rounds` rounds.
- `sync_handoff_cpu_us`: CPU per round trip of the disk-sync handoff from a Trio loop to a
  worker thread and back, with a sync that does nothing: `trio.to_thread.run_sync`, and the
  agent's own `SyncThread` (runtime/durability.py) where this tree has it, measured in
  alternating blocks.

CPU, not wall time: on a shared host the wall time mostly measures the neighbours. Run it
in two trees (a worktree of each) one after the other to compare them.

    python scripts/bench_store.py [--batch 16] [--calls 400] [--rounds 5] [--sync-every 1]
        [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipnode.core.records import Record, Version
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import encode_value

ORIGIN = b"\x07" * 32
VALUE = encode_value({"pad": "x" * 1000})  # as bench_cluster.py writes
CLIENTS = 16
# Records stored before timing: a tree a few levels deep, as after a short burst.
PRELOAD_RECORDS = 10_000
HANDOFF_ROUND_TRIPS = 6000
HANDOFF_BLOCKS = 20


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def store_round(directory: Path, batch: int, calls: int, sync_every: int) -> float:
    store = SqliteStore(directory / "store.sqlite3", deferred_sync=True)
    try:
        for start in range(0, PRELOAD_RECORDS, 500):
            store.apply([Record("consumers", f"p{i}", VALUE, Version(1, 0, ORIGIN))
                         for i in range(start, start + 500)])
        store.sync_wal()
        batches = [[Record("consumers", f"w{(call * batch + j) % CLIENTS}-{call}-{j}", VALUE,
                           Version(2, 0, ORIGIN)) for j in range(batch)]
                   for call in range(calls)]
        before = cpu_s()
        for call, records in enumerate(batches, 1):
            store.apply_changes(records)
            if call % sync_every == 0:
                store.sync_wal()
        return (cpu_s() - before) * 1e6 / (batch * calls)
    finally:
        store.close()


async def handoffs() -> dict[str, float]:
    """CPU per round trip of each handoff, measured in alternating blocks so that a change
    in what else loads the host weighs on both alike."""
    try:
        from gossipnode.runtime.durability import SyncThread
    except ImportError:  # a tree from before it
        SyncThread = None
    syncer = None if SyncThread is None else SyncThread(int)

    async def to_thread() -> None:
        await trio.to_thread.run_sync(int)

    ways = {"trio_to_thread": to_thread}
    if syncer is not None:
        ways["sync_thread"] = syncer.run
    spent = dict.fromkeys(ways, 0.0)
    for _ in range(HANDOFF_BLOCKS):
        for name, way in ways.items():
            before = cpu_s()
            for _ in range(HANDOFF_ROUND_TRIPS // HANDOFF_BLOCKS):
                await way()
            spent[name] += cpu_s() - before
    if syncer is not None:
        syncer.stop()
    return {name: total * 1e6 / HANDOFF_ROUND_TRIPS for name, total in spent.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="records per apply_changes")
    parser.add_argument("--calls", type=int, default=400, help="apply_changes calls a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sync-every", type=int, default=1, help="calls per sync_wal")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-store-") as scratch:
            rounds.append(store_round(Path(scratch), args.batch, args.calls, args.sync_every))
    result = {
        "batch": args.batch,
        "sync_every": args.sync_every,
        "store_cpu_us_per_record": round(statistics.median(rounds), 1),
        "store_cpu_us_per_record_rounds": [round(r, 1) for r in rounds],
        "sync_handoff_cpu_us": {k: round(v, 1) for k, v in trio.run(handoffs).items()},
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
