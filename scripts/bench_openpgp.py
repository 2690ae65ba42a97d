"""Benchmark of the OpenPGP boundary (gossipnode.openpgp): how long key import and the
receiver-side secret check take, per call, on freshly generated Ed25519/Cv25519 keys.

Usage: python scripts/bench_openpgp.py [--keys N] [--json]

Figures (microseconds per call unless named otherwise):
- generate_key: one armored secret key.
- split_keys_armored_file: one file of N armored secret keys (milliseconds per file).
- split_keys_one_secret / split_keys_one_public: one armored key.
- contains_secret_armored_secret / contains_secret_binary_public: the content check.
- value_holds_secret_consumer: a whole `consumers` value (public cert plus text fields),
  which is what a receiver runs per record.
- walker_only_binary_public: the pure-Python walker alone on a binary certificate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipnode.openpgp import (  # after the path set-up above
    consumer_value,
    contains_secret_key_material,
    generate_key,
    split_keys,
    value_holds_secret,
)
from gossipnode.openpgp.packets import has_secret_packet

# Each figure is the best of this many rounds: the machine is shared, the minimum is the
# least disturbed measurement.
ROUNDS = 3


def per_call_us(function: Callable[[], object], calls: int) -> float:
    best_s = float("inf")
    for _ in range(ROUNDS):
        start_s = time.perf_counter()
        for _ in range(calls):
            function()
        best_s = min(best_s, time.perf_counter() - start_s)
    return best_s / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200, help="keys per generated file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    arguments = parser.parse_args()
    count = arguments.keys

    secrets = [generate_key(f"User {index} <user{index}@example.org>") for index in range(count)]
    armored_file = b"\n".join(secrets)
    (one,) = split_keys(secrets[0])
    public_armored = generate_key("Public <public@example.org>", with_secret=False)
    value = consumer_value(one)

    figures = {
        "keys_per_file": count,
        "rust_backtrace": os.environ.get("RUST_BACKTRACE", ""),
        "generate_key_us": per_call_us(lambda: generate_key("G <g@example.org>"), 100),
        "split_keys_armored_file_ms": per_call_us(lambda: split_keys(armored_file), 3) / 1000,
        "split_keys_one_secret_us": per_call_us(lambda: split_keys(secrets[0]), 300),
        "split_keys_one_public_us": per_call_us(lambda: split_keys(public_armored), 300),
        "contains_secret_armored_secret_us": per_call_us(
            lambda: contains_secret_key_material(secrets[0]), 300
        ),
        "contains_secret_binary_public_us": per_call_us(
            lambda: contains_secret_key_material(one.public_cert), 300
        ),
        "value_holds_secret_consumer_us": per_call_us(lambda: value_holds_secret(value), 300),
        "walker_only_binary_public_us": per_call_us(
            lambda: has_secret_packet(one.public_cert), 1000
        ),
    }
    if arguments.json:
        print(json.dumps(figures, sort_keys=True))
        return
    for name, figure in figures.items():
        text = f"{figure:,.1f}" if isinstance(figure, float) else str(figure)
        print(f"{name:40} {text:>12}")


if __name__ == "__main__":
    main()
