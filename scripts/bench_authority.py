"""Benchmark: what authority costs a receiver (core/authority.py) with real Ed25519.

Prints, for signed private-key records arriving at a node: verifications per second the
first time, per second when cached (the same record again: a forward, anti-entropy), and
records per second through `NodeCore.receive` (a push of signed records, MemoryStore).

    .venv/bin/python scripts/bench_authority.py [--records N] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nacl.signing  # after the path set-up above

from gossipnode.config import NodeConfig
from gossipnode.core.authority import Authority, grant_key, signing_payload
from gossipnode.core.node import NodeCore
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push
from gossipnode.core.store import MemoryStore
from gossipnode.wire.cbor import decode_value, encode_value

# Records per push, as the core batches them (PUSH_RECORDS_MAX).
BATCH = 64


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public).verify(message, signature)
    except Exception:
        return False
    return True


def signed(key: nacl.signing.SigningKey, dataset: str, name: str, value: dict,
           version: Version) -> Record:
    encoded = encode_value(value)
    payload = signing_payload(dataset, name, version, encoded)
    return Record(dataset, name, encoded, version, key.sign(payload).signature)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    admin, writer = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    admin_id, writer_id = bytes(admin.verify_key), bytes(writer.verify_key)
    node_key = nacl.signing.SigningKey.generate()
    now_ms = int(time.time() * 1000)
    records = [signed(writer, "private_keys", f"fpr{i:08d}", {"secret_key": bytes(300)},
                      Version(now_ms, i, writer_id)) for i in range(args.records)]

    authority = Authority((admin_id,), verify)
    started = time.perf_counter()
    assert all(authority.signature_valid(r) for r in records)
    cold = args.records / (time.perf_counter() - started)
    started = time.perf_counter()
    assert all(authority.signature_valid(r) for r in records)
    cached = args.records / (time.perf_counter() - started)

    grants = [signed(admin, "cluster_policy", grant_key(n), {"admitted": True,
                     "private_keys": True}, Version(now_ms - 10, 0, admin_id))
              for n in (writer_id, bytes(node_key.verify_key))]
    config = NodeConfig(name="bench", admin_keys=(admin_id,))
    core = NodeCore(config, store=MemoryStore(), node_id=bytes(node_key.verify_key),
                    rng=random.Random(1), now=now_ms / 1000, wall_ms=lambda: now_ms,
                    sign=lambda m: node_key.sign(m).signature, verify=verify,
                    decode_value=decode_value, incarnation=1)
    for grant in grants:
        core.write_signed(grant, now_ms / 1000)
    started = time.perf_counter()
    for first in range(0, args.records, BATCH):
        core.receive(writer_id, Push(first, tuple(records[first:first + BATCH])), now_ms / 1000)
    through_core = args.records / (time.perf_counter() - started)
    assert core.store.count("private_keys") == args.records
    result = {"records": args.records, "verify_per_s": round(cold),
              "verify_cached_per_s": round(cached), "receive_signed_per_s": round(through_core)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.records} signed private-key records (Ed25519, 300-byte values)")
        print(f"  verify, first time   {result['verify_per_s']:>9} /s")
        print(f"  verify, cached       {result['verify_cached_per_s']:>9} /s")
        print(f"  NodeCore.receive     {result['receive_signed_per_s']:>9} records/s "
              "(push batches of 64, MemoryStore)")


if __name__ == "__main__":
    main()
