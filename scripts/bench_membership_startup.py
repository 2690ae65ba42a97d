"""Agent start-up cost: CPU seconds from exec to the first answered `status`, and the CPU
seconds of the imports alone.

For each of `--runs` runs: one agent (a fresh data directory, no peers to join) is started
with `python -m gossipnode agent`; the control socket is asked for `status` every
`POLL_S` until it answers; the agent's CPU seconds (user + system, from /proc) at that
moment are taken, then it is stopped by its PID (SIGTERM). Separately, `--runs` times, a
fresh interpreter imports what `gossipnode agent` imports before it starts (the agent verb
and the runtime) and its CPU seconds are taken (getrusage of the child). Medians, minima and
maxima are printed (`--json`: as JSON). With `--importtime`, the modules whose imports cost
the agent most (cumulative microseconds, `python -X importtime`) are printed too.

CPU seconds, not wall time: on a shared machine wall time counts everyone's work.

Usage: python scripts/bench_membership_startup.py [--runs 7] [--json] [--importtime]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_cli import answers, stop  # noqa: E402
from scripts.bench_membership_real import TICKS_PER_S, _median, precompile  # noqa: E402
from scripts.local_cluster import free_ports  # noqa: E402

# The control socket is asked this often until it answers: often enough that the figure is
# the agent's start-up, not the wait; each failed attempt costs the agent nothing.
POLL_S = 0.01
# An agent answers within this after starting, or the run fails.
START_TIMEOUT_S = 120.0
# What `gossipnode agent` imports before `run_agent` starts (commands/agent.py).
AGENT_IMPORTS = (
    "import gossipnode.cli, gossipnode.commands.agent, gossipnode.config_file, "
    "gossipnode.runtime.daemon, gossipnode.runtime.logs"
)
# Modules listed with --importtime.
IMPORTTIME_TOP = 25


def _gossipnode(*args: str, **kwargs) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gossipnode", *args], cwd=ROOT, **kwargs)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def _init(root: Path, name: str) -> Path:
    secret = root / "cluster.secret"
    if not secret.exists():
        subprocess.run([sys.executable, "-m", "gossipnode", "keygen", "--out", str(secret)],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=60)
    directory = root / name
    (port,) = free_ports(1)
    subprocess.run([sys.executable, "-m", "gossipnode", "init", "--data-dir", str(directory),
                    "--name", name, "--listen", f"127.0.0.1:{port}",
                    "--secret-file", str(secret), "--open"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)  # fmt: skip
    return directory


def start_once(directory: Path, extra: tuple[str, ...] = ()) -> tuple[float, float, str]:
    """(CPU seconds until `status` answered, wall seconds, stderr) of one agent start."""
    log = directory / "agent.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *extra, "-m", "gossipnode", "agent", "--config",
             str(directory / "node.toml")],
            cwd=ROOT, stdout=out, stderr=out,
        )  # fmt: skip
    started = time.monotonic()
    try:
        while not answers(directory / "control.sock"):
            if process.poll() is not None or time.monotonic() - started > START_TIMEOUT_S:
                raise RuntimeError(f"agent did not answer: {log.read_text()[-400:]}")
            time.sleep(POLL_S)
        cpu_s, wall_s = _cpu_s(process.pid), time.monotonic() - started
    finally:
        stop(process)
    return cpu_s, wall_s, log.read_text()


def imports_once() -> float:
    """CPU seconds of a fresh interpreter importing what the agent verb imports."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", AGENT_IMPORTS], cwd=ROOT, check=True, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def importtime(directory: Path) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the agent's costliest imports."""
    _, _, log = start_once(directory, ("-X", "importtime"))
    rows = []
    for line in log.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line[12:].split("|"))
            if cumulative.isdigit():
                rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:IMPORTTIME_TOP]


def _summary(values: list[float]) -> dict:
    return {"median": round(_median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": len(values)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    precompile()
    root = Path(tempfile.mkdtemp(prefix="gn-startup-"))
    try:
        directory = _init(root, "s0")
        cpu, wall, imports = [], [], []
        for _ in range(args.runs):  # interleaved, so that load from others hits both alike
            cpu_s, wall_s, _ = start_once(directory)
            cpu.append(cpu_s)
            wall.append(wall_s)
            imports.append(imports_once())
        result = {"start_cpu_s": _summary(cpu), "start_wall_s": _summary(wall),
                  "imports_cpu_s": _summary(imports),
                  "load_average": os.getloadavg()[0]}  # fmt: skip
        if args.importtime:
            result["importtime_us"] = [[us, name] for us, name in importtime(directory)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        s, w, i = result["start_cpu_s"], result["start_wall_s"], result["imports_cpu_s"]
        print(f"agent start-up: {s['median']:.3f} CPU s to the first status answer "
              f"(min {s['min']:.3f}, max {s['max']:.3f}; wall median {w['median']:.2f} s), "
              f"imports alone {i['median']:.3f} CPU s (min {i['min']:.3f}, max {i['max']:.3f}), "
              f"{s['runs']} runs, load {result['load_average']:.1f}")
        for us, name in result.get("importtime_us", []):
            print(f"  {us / 1000:8.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
