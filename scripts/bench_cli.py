"""What the `gossipnode` command costs an operator, and what an agent costs to start and to
keep idle: CPU and wall milliseconds of client verbs against a running agent, the agent's
CPU from exec to its first `status` answer, and its resident memory once idle.

For each checkout given with `--tree` (default: this one; each runs with its own
`.venv/bin/python` if it has one), one agent is initialised (a fresh data directory, open,
no peers). Then, `--runs` times, and interleaved across the trees so that load from others
hits each alike:

- the agent is started; its CPU until `status` first answers (every task's run time from
  /proc/PID/task/*/schedstat, nanoseconds) and the wall time are taken;
- each command of COMMANDS runs once against it (`--help`, `status`, `members`, `put`,
  `get`); its CPU is the child's user + system time (getrusage), its wall time from fork to
  exit;
- after IDLE_S of idleness the agent's VmRSS is read, then it is stopped by its PID.

Medians (and minima, maxima) are printed per tree; `--json` prints them as JSON. CPU, not
wall time, is the figure to compare on a shared machine. The idle agent's VmRSS is also
split into its anonymous part (the process's own) and its file-backed part (libraries'
pages, shared with every process that maps them).

With `--memory`, where that resident memory comes from instead: in a fresh interpreter of
each tree, the agent's imports are made group by group, in IMPORT_GROUPS order (each
group's figure is what it adds to the groups before it), and VmRSS with its anonymous and
file-backed parts is read after each (deterministic: one run is enough).

Usage: python scripts/bench_cli.py [--runs 7] [--tree DIR ...] [--json] [--memory]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gossipnode.client import AgentUnreachable, ClientError, ControlClient  # noqa: E402
from scripts.local_cluster import free_ports  # noqa: E402

# The commands an operator runs most, against the running agent (SOCKET is its socket).
COMMANDS: dict[str, tuple[str, ...]] = {
    "help": ("--help",),
    "status": ("status", "--socket", "SOCKET"),
    "members": ("members", "--socket", "SOCKET"),
    "put": ("put", "groups", "sales", "--value", '{"members": ["ann"]}', "--socket", "SOCKET"),
    "get": ("get", "groups", "sales", "--socket", "SOCKET"),
}
# The control socket is asked this often until it answers: often enough that the figure is
# the agent's start-up, not the wait; each failed attempt costs the agent nothing.
POLL_S = 0.01
# An agent answers within this after starting, or the run fails (a loaded machine).
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
# A command finishes within this, or the run fails.
COMMAND_TIMEOUT_S = 60.0
# The agent is left alone this long before its resident memory is read: past start-up, with
# the store open and its timers running (a lone agent has no peer to talk to).
IDLE_S = 3.0


# The agent's imports in groups, in dependency order (--memory). gossipnode.runtime comes
# before Trio as in the agent: importing it may change what Trio loads (runtime/__init__.py).
IMPORT_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("the interpreter", ()),
    ("command line: cli, the agent verb", ("gossipnode.cli", "gossipnode.commands.agent")),
    ("configuration: config_file, tomllib", ("gossipnode.config_file",)),
    ("standard library Trio imports", ("ctypes.util", "subprocess", "tempfile", "hashlib",
                                       "hmac", "socket", "selectors", "random", "queue")),
    ("attrs, idna, sortedcontainers, outcome", ("attrs", "idna", "sortedcontainers",
                                                "outcome", "sniffio")),
    ("Trio", ("gossipnode.runtime", "trio")),
    ("cbor2, PyNaCl, sqlite3", ("cbor2", "nacl.signing", "nacl.public", "sqlite3")),
    ("the core", ("gossipnode.core.node",)),
    ("wire, storage, driving", ("gossipnode.driving", "gossipnode.storage",
                                "gossipnode.wire.handshake")),
    ("the agent: runtime/", ("gossipnode.runtime.daemon", "gossipnode.runtime.control",
                             "gossipnode.runtime.signals")),
)
MEMORY_PROGRAM = """
import importlib, sys
def status():
    with open("/proc/self/status") as file:
        fields = dict(line.split(":", 1) for line in file)
    return {key: int(fields[key].split()[0]) for key in ("VmRSS", "RssAnon", "RssFile")}
report = []
for name, modules in eval(sys.argv[1]):  # IMPORT_GROUPS' repr: no json imported yet
    for module in modules:
        importlib.import_module(module)
    report.append({"group": name, "modules": len(sys.modules), **status()})
import json
print(json.dumps(report))
"""


class Tree:
    """One checkout: its directory, its interpreter, its initialised node."""

    def __init__(self, root: Path, scratch: Path) -> None:
        self.root = root
        venv = root / ".venv" / "bin" / "python"
        self.python = str(venv) if venv.exists() else sys.executable
        scratch.mkdir(parents=True)
        self.node = scratch / "node"
        self.socket = self.node / "control.sock"
        # Bytecode written first: an installed gossipnode has it (pip compiles at install).
        self._run(["-m", "compileall", "-q", "gossipnode"], timeout=300)
        secret = scratch / "cluster.secret"
        self._run(["-m", "gossipnode", "keygen", "--out", str(secret)])
        (port,) = free_ports(1)
        self._run(["-m", "gossipnode", "init", "--data-dir", str(self.node), "--name",
                   "bench", "--listen", f"127.0.0.1:{port}", "--secret-file", str(secret),
                   "--open"])  # fmt: skip

    def _run(self, arguments: list[str], timeout: float = COMMAND_TIMEOUT_S) -> None:
        subprocess.run([self.python, *arguments], cwd=self.root, check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def command(self, words: tuple[str, ...]) -> tuple[float, float]:
        """(CPU ms, wall ms) of one `gossipnode` command; it must succeed."""
        arguments = [str(self.socket) if word == "SOCKET" else word for word in words]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([self.python, "-m", "gossipnode", *arguments], cwd=self.root,
                       check=True, timeout=COMMAND_TIMEOUT_S, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return cpu * 1000, wall * 1000

    def import_memory(self) -> list[dict]:
        """VmRSS, RssAnon, RssFile (KiB) and the count of modules after each import group."""
        result = subprocess.run([self.python, "-c", MEMORY_PROGRAM, repr(IMPORT_GROUPS)],
                                cwd=self.root, check=True, timeout=COMMAND_TIMEOUT_S,
                                capture_output=True, text=True)  # fmt: skip
        return json.loads(result.stdout)

    def start_agent(self) -> tuple[subprocess.Popen[bytes], float, float]:
        """A running agent, its CPU ms until `status` first answered, and the wall ms."""
        log = (self.node / "agent.log").open("wb")
        process = subprocess.Popen(
            [self.python, "-m", "gossipnode", "agent", "--config", str(self.node / "node.toml")],
            cwd=self.root, stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        started = time.perf_counter()
        while not answers(self.socket):
            if process.poll() is not None or time.perf_counter() - started > START_TIMEOUT_S:
                stop(process)
                tail = (self.node / "agent.log").read_text()[-400:]
                raise RuntimeError(f"the agent did not answer: {tail}")
            time.sleep(POLL_S)
        return process, task_cpu_ms(process.pid), (time.perf_counter() - started) * 1000


def answers(socket: Path) -> bool:
    """Whether the agent behind `socket` answers `status`."""
    with contextlib.suppress(AgentUnreachable, ClientError, OSError), ControlClient(socket) as c:
        return c.request("status") is not None
    return False


def task_cpu_ms(pid: int) -> float:
    """CPU ms of every thread of `pid` so far (schedstat: nanoseconds on a CPU)."""
    total_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            total_ns += int((task / "schedstat").read_text().split()[0])
    return total_ns / 1e6


def rss_mib(pid: int) -> dict[str, float]:
    """VmRSS, and its anonymous and file-backed parts, in MiB."""
    fields = dict(line.split(":", 1)
                  for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "RssAnon", "RssFile")}


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful leave); SIGKILL if it has not exited within STOP_TIMEOUT_S."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def _summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "runs": len(values)}  # fmt: skip


def bench(roots: list[Path], runs: int) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="gn-bench-cli-"))
    try:
        trees = [Tree(root, scratch / str(index)) for index, root in enumerate(roots)]
        samples = {str(t.root): {key: [] for key in _keys()} for t in trees}
        for _ in range(runs):
            for tree in trees:  # interleaved: each run measures every tree in turn
                got = samples[str(tree.root)]
                process, cpu, wall = tree.start_agent()
                try:
                    got["agent_start_cpu_ms"].append(cpu)
                    got["agent_start_wall_ms"].append(wall)
                    for name, words in COMMANDS.items():
                        cpu, wall = tree.command(words)
                        got[f"{name}_cpu_ms"].append(cpu)
                        got[f"{name}_wall_ms"].append(wall)
                    time.sleep(IDLE_S)
                    rss = rss_mib(process.pid)
                    got["agent_idle_rss_mib"].append(rss["VmRSS"])
                    got["agent_idle_rss_anon_mib"].append(rss["RssAnon"])
                    got["agent_idle_rss_file_mib"].append(rss["RssFile"])
                finally:
                    stop(process)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"trees": {root: {key: _summary(values) for key, values in got.items()}
                      for root, got in samples.items()},
            "load_average": os.getloadavg()[0]}  # fmt: skip


def _keys() -> list[str]:
    keys = ["agent_start_cpu_ms", "agent_start_wall_ms", "agent_idle_rss_mib",
            "agent_idle_rss_anon_mib", "agent_idle_rss_file_mib"]
    for name in COMMANDS:
        keys += [f"{name}_cpu_ms", f"{name}_wall_ms"]
    return keys


def print_memory(roots: list[Path], as_json: bool) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="gn-bench-cli-"))
    try:
        result = {str(root): Tree(root, scratch / str(index)).import_memory()
                  for index, root in enumerate(roots)}  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if as_json:
        print(json.dumps(result))
        return 0
    for root, steps in result.items():
        print(f"{root}: resident memory after each group of the agent's imports, MiB "
              f"(added by the group: VmRSS = anonymous + files)")
        keys = ("VmRSS", "RssAnon", "RssFile", "modules")
        previous = dict.fromkeys(keys, 0)
        for step in steps:
            added = {key: step[key] - previous[key] for key in keys}
            print(f"  {step['group']:<38} {step['VmRSS'] / 1024:5.1f}  "
                  f"+{added['VmRSS'] / 1024:4.1f} = {added['RssAnon'] / 1024:4.1f} + "
                  f"{added['RssFile'] / 1024:4.1f}  ({added['modules']:+d} modules)")
            previous = step
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tree", type=Path, action="append", default=[],
                        help="a gossipnode checkout to measure (repeatable; default: this one)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--memory", action="store_true",
                        help="where an agent's resident memory comes from, import by import")
    args = parser.parse_args()
    roots = [tree.resolve() for tree in args.tree] or [ROOT]
    if args.memory:
        return print_memory(roots, args.json)
    result = bench(roots, args.runs)
    if args.json:
        print(json.dumps(result))
        return 0
    for root, figures in result["trees"].items():
        print(f"{root} ({args.runs} runs, medians; load {result['load_average']:.1f}):")
        start, wall = figures["agent_start_cpu_ms"], figures["agent_start_wall_ms"]
        print(f"  agent start-up  {start['median']:6.1f} CPU ms (min {start['min']:.1f}, "
              f"max {start['max']:.1f}), {wall['median']:6.1f} wall ms; idle RSS "
              f"{figures['agent_idle_rss_mib']['median']:.1f} MiB (anonymous "
              f"{figures['agent_idle_rss_anon_mib']['median']:.1f}, files "
              f"{figures['agent_idle_rss_file_mib']['median']:.1f})")
        for name in COMMANDS:
            cpu, wall = figures[f"{name}_cpu_ms"], figures[f"{name}_wall_ms"]
            print(f"  {name:<14}  {cpu['median']:6.1f} CPU ms (min {cpu['min']:.1f}, "
                  f"max {cpu['max']:.1f}), {wall['median']:6.1f} wall ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
