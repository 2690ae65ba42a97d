"""Benchmark: the content check of record values (openpgp/content.py), which every node runs
on each write and on each record a peer sends. Prints MB/s per kind of value, and the false
positives over random binary (mail bodies are random-looking).

    .venv/bin/python scripts/bench_content_check.py [--json]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipnode.openpgp.content import record_refusal  # after the path set-up above
from gossipnode.wire.cbor import encode_value

# Values per kind: enough for a stable figure in a few seconds on one core.
SAMPLES = 200
SAMPLE_BYTES = 64 * 1024


def measure(name: str, dataset: str, values: list[dict]) -> dict:
    encoded = [encode_value(v) for v in values]
    started = time.perf_counter()
    refused = sum(record_refusal(dataset, f"k{i}", e) is not None for i, e in enumerate(encoded))
    elapsed = time.perf_counter() - started
    size = sum(len(e) for e in encoded)
    return {"kind": name, "dataset": dataset, "values": len(values), "bytes": size,
            "mb_per_s": round(size / elapsed / 1e6, 2),
            "us_per_value": round(elapsed / len(values) * 1e6, 1), "refused": refused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(1)
    blobs = [rng.randbytes(SAMPLE_BYTES) for _ in range(SAMPLES)]
    results = [
        measure("random binary (mail bodies)", "web_messenger", [{"body": b} for b in blobs]),
        measure("base64 text", "groups",
                [{"text": base64.b64encode(b).decode()} for b in blobs[:50]]),
        measure("hex text", "groups", [{"text": b.hex()} for b in blobs[:20]]),
        measure("short fields", "consumers",
                [{"email": f"user{i}@example.org", "name": f"User {i}", "n": i}
                 for i in range(5000)]),
        # What scripts/bench_cluster.py writes: every node checks each such value once.
        measure("1 KiB write (bench_cluster)", "consumers",
                [{"pad": "x" * 1000} for _ in range(5000)]),
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{r['kind']:<30} {r['values']:>6} values {r['bytes'] / 1e6:>8.2f} MB "
              f"{r['mb_per_s']:>8.2f} MB/s {r['us_per_value']:>9.1f} us/value  "
              f"refused {r['refused']}")


if __name__ == "__main__":
    main()
