"""Benchmark `NodeCore.next_deadline()` while many pushes wait for acknowledgements.

One core with one live peer that never answers (its messages are simply not delivered, and
the core's own membership timers are left alone, so the peer stays alive to it for the
whole run). For each backlog size n, n single-record writes leave n pushes pending, each
with its own retry deadline in the node's timers heap; the script then times
`next_deadline()` (what the driver calls after every input) and one `handle_timer` at the
first push retry (which resends all n). With one heap, `next_deadline()` must stay flat as
n grows (O(log n) amortized); a scan of every pending push would grow linearly.

Usage: python scripts/bench_core_deadlines.py [--json] [--sizes 100,1000,10000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipnode.config import NodeConfig, ReplicationConfig, TagsConfig
from gossipnode.core.node import NodeCore
from gossipnode.core.replication import PUSH_RETRY_S
from gossipnode.core.store import MemoryStore
from gossipnode.wire.cbor import decode_value, encode_value
from tests.core.membership.virtual_cluster import FakeSigning

# Calls of next_deadline() timed per size: enough for a stable per-call figure.
DEADLINE_CALLS = 20_000
START_S = 1_000_000.0


def make_core(name: str, index: int, signing: FakeSigning, rng: random.Random,
              backlog: int) -> NodeCore:
    node_id, sign = signing.new_identity(rng)
    config = NodeConfig(
        name=name, listen=(f"10.0.0.{index}", 7946), tags=TagsConfig(),
        # Room for the whole backlog in one peer's push queue.
        replication=ReplicationConfig(peer_queue_records_max=backlog + 1),
    )
    return NodeCore(config, store=MemoryStore(), node_id=node_id, rng=rng, now=START_S,
                    wall_ms=lambda: int(START_S * 1000), sign=sign, verify=signing.verify,
                    decode_value=decode_value, incarnation=1)


def connected_pair(backlog: int) -> NodeCore:
    """A core that knows one alive peer (joined through it, with messages delivered)."""
    rng = random.Random(1)
    signing = FakeSigning()
    a = make_core("a", 1, signing, rng, backlog)
    b = make_core("b", 2, signing, rng, backlog)
    cores = {a.node_id: a, b.node_id: b}
    by_address = {("10.0.0.1", 7946): a, ("10.0.0.2", 7946): b}
    a.join([("10.0.0.2", 7946)], START_S)
    sender = {id(a): a.node_id, id(b): b.node_id}
    for _ in range(50):  # deliver until quiet: the join's push-pull
        moved = False
        for core in cores.values():
            for event in core.events():
                if hasattr(event, "message"):
                    by_address[event.to].receive(sender[id(core)], event.message, START_S)
                    moved = True
        if not moved:
            break
    a.events()
    assert len(a.members()) == 2, "the pair did not join"
    return a


def measure(backlog: int) -> dict[str, float]:
    core = connected_pair(backlog)
    value = encode_value({"n": 1})
    for i in range(backlog):
        core.put("groups", f"g{i}", value, START_S)
    core.events()
    pending = core.statistics()["pushes_pending"]
    started = time.perf_counter()
    for _ in range(DEADLINE_CALLS):
        core.next_deadline()
    per_call_us = (time.perf_counter() - started) / DEADLINE_CALLS * 1e6
    started = time.perf_counter()
    core.handle_timer(START_S + PUSH_RETRY_S)
    resent = sum(1 for e in core.events() if type(getattr(e, "message", None)).__name__ == "Push")
    timer_ms = (time.perf_counter() - started) * 1e3
    return {"backlog": backlog, "pushes_pending": pending,
            "next_deadline_us": round(per_call_us, 3), "handle_timer_ms": round(timer_ms, 2),
            "pushes_resent": resent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--sizes", default="100,1000,10000",
                        help="backlog sizes, comma-separated (default: 100,1000,10000)")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    rows = [measure(size) for size in sizes]
    if arguments.json:
        print(json.dumps({"next_deadline": rows}, indent=2))
        return
    print(f"{'backlog':>8} {'pending':>8} {'next_deadline':>14} {'handle_timer':>13} {'resent':>7}")
    for row in rows:
        print(f"{row['backlog']:>8} {row['pushes_pending']:>8} "
              f"{row['next_deadline_us']:>11.3f} us {row['handle_timer_ms']:>10.2f} ms "
              f"{row['pushes_resent']:>7}")


if __name__ == "__main__":
    main()
