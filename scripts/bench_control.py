"""What the control socket costs: requests per second, latency, and the CPU the agent and
the client spend per request, for ping, put, get, list and status against one real agent
process; then `put` from `--clients` concurrent client processes (the group commit shares
each disk sync among them, so the CPU per write is what is left to cut); then the wall time
of one `gossipnode` CLI process.

Starts a fresh single-node agent in a temporary directory (127.0.0.1, a free port), drives
it with one ControlClient connection (requests back to back), then stops it with SIGTERM.
`put` waits for its disk sync, so the rate of a lone client is the disk's fsync rate.
Client and agent share the machine's CPUs: the rates and latencies are a relative cost on
a loaded machine; the CPU per request (agent: from /proc, at the kernel's clock-tick
resolution; client: this process's, or the client processes') depends far less on the load.

    python scripts/bench_control.py [--json] [--quick] [--clients N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import resource
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
# The concurrent clients of the `put` run must be done within this long.
CONCURRENT_TIMEOUT_S = 300.0
# Concurrent clients run as processes, so that the client side has CPUs of its own to use.
_PROCESSES = multiprocessing.get_context("fork")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _quiet(*arguments: str) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(io.StringIO()):
        assert cli_main(list(arguments)) == 0, arguments
    return output.getvalue()


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has spent so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _row(name: str, latencies: list[float], elapsed: float, agent_cpu_s: float,
         client_cpu_s: float) -> dict[str, Any]:
    count = len(latencies)
    latencies.sort()
    return {
        "operation": name,
        "count": count,
        "per_second": round(count / elapsed, 1),
        "median_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(count - 1, int(count * 0.99))] * 1000, 3),
        "agent_cpu_us": round(agent_cpu_s * 1e6 / count, 1),
        "client_cpu_us": round(client_cpu_s * 1e6 / count, 1),
    }


def _client_cpu_s() -> float:
    """CPU seconds of this process and of its children that ended and were waited for (the
    client processes; the agent runs on)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + usage.ru_utime + usage.ru_stime


def _measure(name: str, count: int, call: Callable[[int], Any], agent: int) -> dict[str, Any]:
    latencies = []
    agent_before, client_before = _cpu_s(agent), _client_cpu_s()
    started = time.perf_counter()
    for index in range(count):
        before = time.perf_counter()
        call(index)
        latencies.append(time.perf_counter() - before)
    elapsed = time.perf_counter() - started
    return _row(name, latencies, elapsed, _cpu_s(agent) - agent_before,
                _client_cpu_s() - client_before)


def _put_client(path: Path, worker: int, count: int, value: dict[str, Any], out: Any) -> None:
    """One client process of the concurrent run: `count` puts back to back."""
    latencies = []
    with ControlClient(path) as client:
        for i in range(count):
            before = time.perf_counter()
            client.request("put", dataset="consumers", key=f"c{worker}-{i}", value=value)
            latencies.append(time.perf_counter() - before)
    out.put(latencies)


def _measure_concurrent(clients: int, count: int, path: Path, value: dict[str, Any],
                        agent: int) -> dict[str, Any]:
    """`count` puts in all from `clients` processes, each with its own connection."""
    out = _PROCESSES.Queue()
    workers = [_PROCESSES.Process(target=_put_client, args=(path, w, count // clients, value,
                                                            out)) for w in range(clients)]
    clients_before, agent_before = _client_cpu_s(), _cpu_s(agent)
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    latencies = [s for _ in workers for s in out.get(timeout=CONCURRENT_TIMEOUT_S)]
    elapsed = time.perf_counter() - started
    agent_cpu_s = _cpu_s(agent) - agent_before
    for worker in workers:
        worker.join(timeout=CONCURRENT_TIMEOUT_S)
    return _row(f"put, {clients} clients", latencies, elapsed, agent_cpu_s,
                _client_cpu_s() - clients_before)


def run(quick: bool, clients: int) -> list[dict[str, Any]]:
    # Enough requests that the agent's CPU, read in clock ticks (10 ms), is a fair figure.
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
            pid = agent.pid
            results = []
            with ControlClient(path) as client:
                results.append(_measure("ping", count, lambda i: client.request("ping"), pid))
                results.append(_measure("put", count, lambda i: client.request(
                    "put", dataset="groups", key=f"group-{i:06d}", value=value), pid))
                results.append(_measure("get", count, lambda i: client.request(
                    "get", dataset="groups", key=f"group-{i:06d}"), pid))
                results.append(_measure("list 100", max(10, count // 5), lambda i: client.request(
                    "list", dataset="groups", limit=100), pid))
                results.append(_measure("status", max(10, count // 5),
                                        lambda i: client.request("status"), pid))
            # The 1 KiB value bench_cluster.py writes.
            results.append(_measure_concurrent(clients, count * 4, path, {"pad": "x" * 1000},
                                               pid))
            results.append(_measure("cli process (members)", 5 if quick else 20, lambda i:
                subprocess.run([sys.executable, "-m", "gossipnode", "members", "--socket",
                                str(path)], env=environment, check=True,
                               capture_output=True, timeout=60), pid))
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
    parser.add_argument("--clients", type=int, default=16, metavar="N",
                        help="client processes of the concurrent put run (default 16)")
    args = parser.parse_args()
    if args.clients < 1:
        parser.error("--clients must be at least 1")
    results = run(args.quick, args.clients)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'operation':<24}{'count':>7}{'per second':>12}{'median ms':>11}{'p99 ms':>9}"
          f"{'agent CPU us':>14}{'client CPU us':>15}")
    for row in results:
        print(f"{row['operation']:<24}{row['count']:>7}{row['per_second']:>12}"
              f"{row['median_ms']:>11}{row['p99_ms']:>9}{row['agent_cpu_us']:>14}"
              f"{row['client_cpu_us']:>15}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
