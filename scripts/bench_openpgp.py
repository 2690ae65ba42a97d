"""Benchmark of the OpenPGP boundary (gossipnode.openpgp): how long key import and the
receiver-side secret check take, per call, on freshly generated Ed25519/Cv25519 keys.

Usage: python scripts/bench_openpgp.py [--keys N] [--import-keys N] [--json]

Figures (microseconds per call unless named otherwise):
- generate_key: one armored secret key.
- split_keys_armored_file: one file of N armored secret keys (milliseconds per file).
- split_keys_one_secret / split_keys_one_public: one armored key.
- contains_secret_armored_secret / contains_secret_binary_public: the content check.
- value_holds_secret_consumer: a whole `consumers` value (public cert plus text fields),
  which is what a receiver runs per record.
- walker_only_binary_public: the pure-Python walker alone on a binary certificate.
- import_s / reimport_s / import_keys_per_s: end to end, one real agent process (fresh store,
  127.0.0.1) and the `gossipnode keys import FILE` CLI process: a file of --import-keys
  armored public keys imported, then the same file again (nothing new to store). Wall time
  of the CLI process, parsing included; `*_cli_cpu_s` / `*_agent_cpu_s` are the CPU
  seconds each process spent (less sensitive than wall time to a busy machine).
  `merge_certs_us`: one merge of two copies.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
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

REPOSITORY = Path(__file__).resolve().parent.parent
# The agent must answer within this long after start; an import within this long.
START_TIMEOUT_S = 30.0
IMPORT_TIMEOUT_S = 600.0

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


def _cli(*arguments: str, timeout_s: float = 60.0) -> float:
    """Run `gossipnode ARGUMENTS` in its own process; its wall time in seconds."""
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    start_s = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gossipnode", *arguments], env=environment,
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, arguments[:2],
                                            stderr=done.stderr.strip()[-500:])
    return time.perf_counter() - start_s


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _import_once(path: Path, sock: str, agent_pid: int) -> tuple[float, float, float]:
    """(wall s, CLI process CPU s, agent CPU s) of one `keys import` of the file. CPU
    seconds show the work done whatever else runs on the machine; wall time does not."""
    client_before, agent_before = _children_cpu_s(), _cpu_s(agent_pid)
    wall_s = _cli("keys", "import", str(path), "--socket", sock, timeout_s=IMPORT_TIMEOUT_S)
    return (wall_s, _children_cpu_s() - client_before, _cpu_s(agent_pid) - agent_before)


def bulk_import(count: int) -> dict[str, float]:
    """Import `count` fresh public keys into one real agent, then the same file again."""
    keys = [generate_key(f"Bulk {i} <bulk{i}@example.org>", with_secret=False)
            for i in range(count)]
    with tempfile.TemporaryDirectory(prefix="gossipnode-bench-") as scratch:
        root = Path(scratch)
        (root / "keys.asc").write_bytes(b"\n".join(keys))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        _cli("keygen", "--out", str(root / "secret"))
        _cli("init", "--data-dir", str(root / "node"), "--name", "bench", "--listen",
             f"127.0.0.1:{port}", "--secret-file", str(root / "secret"), "--open")
        sock = str(root / "node" / "control.sock")
        environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
        agent = subprocess.Popen(
            [sys.executable, "-m", "gossipnode", "agent", "--config",
             str(root / "node" / "node.toml")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    _cli("members", "--socket", sock)
                    break
                except subprocess.CalledProcessError:
                    if time.monotonic() > deadline or agent.poll() is not None:
                        raise SystemExit("the agent did not start") from None
                    time.sleep(0.2)
            try:
                first = _import_once(root / "keys.asc", sock, agent.pid)
                second = _import_once(root / "keys.asc", sock, agent.pid)
            except subprocess.CalledProcessError as error:
                raise SystemExit(f"gossipnode {' '.join(error.cmd)} failed: {error.stderr}") \
                    from None
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=15)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(timeout=15)
    return {"import_keys": count, "import_s": round(first[0], 2),
            "import_keys_per_s": round(count / first[0], 1),
            "import_cli_cpu_s": round(first[1], 2), "import_agent_cpu_s": round(first[2], 2),
            "reimport_s": round(second[0], 2), "reimport_cli_cpu_s": round(second[1], 2),
            "reimport_agent_cpu_s": round(second[2], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200, help="keys per generated file")
    parser.add_argument("--import-keys", type=int, default=10_000,
                        help="keys for the end-to-end import figures (0: skip them)")
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
    try:
        from gossipnode.openpgp.merge import merge_certs
    except ImportError:  # an older checkout, measured for comparison
        pass
    else:
        figures["merge_certs_us"] = per_call_us(
            lambda: merge_certs(one.public_cert, one.public_cert), 1000)
    if arguments.import_keys:
        figures.update(bulk_import(arguments.import_keys))
    if arguments.json:
        print(json.dumps(figures, sort_keys=True))
        return
    for name, figure in figures.items():
        text = f"{figure:,.1f}" if isinstance(figure, float) else str(figure)
        print(f"{name:40} {text:>12}")


if __name__ == "__main__":
    main()
