"""What the control socket costs: requests per second and latency of ping, put, get and
list against one real agent process, plus the wall time of one `gossipnode` CLI process.

Starts a fresh single-node agent in a temporary directory (127.0.0.1, a free port), drives
it with one ControlClient connection (requests back to back), then stops it with SIGTERM.
`put` includes the SQLite commit (synchronous=FULL), so its rate is the disk's fsync rate.
Client and agent share the machine's CPUs: treat the figures as a relative cost.

    python scripts/bench_control.py [--json] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from gossipnode.cli import main as cli_main  # noqa: E402 (after the path insert)
from gossipnode.client import AgentUnreachable, ControlClient  # noqa: E402

# The agent must answer within this long after start.
START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _quiet(*arguments: str) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(io.StringIO()):
        assert cli_main(list(arguments)) == 0, arguments
    return output.getvalue()


def _measure(name: str, count: int, call: Callable[[int], Any]) -> dict[str, Any]:
    latencies = []
    started = time.perf_counter()
    for index in range(count):
        before = time.perf_counter()
        call(index)
        latencies.append(time.perf_counter() - before)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "operation": name,
        "count": count,
        "per_second": round(count / elapsed, 1),
        "median_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(count - 1, int(count * 0.99))] * 1000, 3),
    }


def run(quick: bool) -> list[dict[str, Any]]:
    count = 200 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="gossipnode-bench-") as scratch:
        root = Path(scratch)
        _quiet("keygen", "--out", str(root / "secret"))
        _quiet("init", "--data-dir", str(root / "node"), "--name", "bench", "--listen",
               f"127.0.0.1:{_free_port()}", "--secret-file", str(root / "secret"), "--open")
        config = root / "node" / "node.toml"
        path = root / "node" / "control.sock"
        environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
        agent = subprocess.Popen(
            [sys.executable, "-m", "gossipnode", "agent", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    ControlClient(path).request("ping")
                    break
                except AgentUnreachable:
                    if time.monotonic() > deadline or agent.poll() is not None:
                        raise SystemExit("the agent did not start") from None
                    time.sleep(0.05)
            value = {"members": [f"user-{i}" for i in range(20)], "note": "x" * 500}
            results = []
            with ControlClient(path) as client:
                results.append(_measure("ping", count, lambda i: client.request("ping")))
                results.append(_measure("put", count, lambda i: client.request(
                    "put", dataset="groups", key=f"group-{i:06d}", value=value)))
                results.append(_measure("get", count, lambda i: client.request(
                    "get", dataset="groups", key=f"group-{i:06d}")))
                results.append(_measure("list 100", max(10, count // 20), lambda i: client.request(
                    "list", dataset="groups", limit=100)))
                results.append(_measure("status", max(10, count // 20),
                                        lambda i: client.request("status")))
            results.append(_measure("cli process (members)", 5 if quick else 20, lambda i:
                subprocess.run([sys.executable, "-m", "gossipnode", "members", "--socket",
                                str(path)], env=environment, check=True,
                               capture_output=True, timeout=60)))
            return results
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=15)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    args = parser.parse_args()
    results = run(args.quick)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'operation':<24}{'count':>7}{'per second':>12}{'median ms':>11}{'p99 ms':>9}")
    for row in results:
        print(f"{row['operation']:<24}{row['count']:>7}{row['per_second']:>12}"
              f"{row['median_ms']:>11}{row['p99_ms']:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
