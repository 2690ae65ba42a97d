"""The same membership steps with serf agents on 127.0.0.1 (`bench_membership.py --real N
--serf`), for a side-by-side comparison in one run.

serf (HashiCorp's gossip membership agent; Debian package `serf`) runs memberlist's LAN
profile, whose probe interval (1 s), probe timeout (500 ms), gossip interval (200 ms),
suspicion multiplier (4) and push-pull interval (30 s) are gossipnode's defaults too. Its
traffic is encrypted with a shared key (`-encrypt`), as every gossipnode frame is.

The steps and figures are those of bench_membership_real.py, measured the same way where the
two agents allow it:
- an agent is *answering* when it logs that its RPC listener starts (serf opens it before it
  joins; gossipnode answers `status` before it joins too). Agent s0 starts first and the others
  join it (`-join`, which makes a serf agent exit if its seed is not up yet), all at once;
- every change is timed from the agents' logs: each agent's standard output is read by a
  thread here that stamps every line with the wall clock as it arrives (serf writes each log
  line at once; its own timestamps are whole seconds). `EventMemberJoin`, `EventMemberUpdate`,
  `EventMemberFailed` and `EventMemberLeave` are the changes; nothing polls the agents;
- false suspicions are the "Suspect ... has failed, no acks received" lines (a suspicion its
  own failed probe started), during the join and the idle window;
- idle: resident memory and CPU from /proc, as for gossipnode; bytes are the loopback
  interface's transmitted bytes over the window (/proc/net/dev, IP and TCP/UDP headers and
  bare ACKs included) divided by the agents, a figure taken for gossipnode's agents too.
Tag change: `serf tags -set`; failure: SIGKILL; leave: SIGINT (serf's graceful leave).
Every process started is stopped by its PID; the directory is removed.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_membership_real import (  # noqa: E402
    CHANGE_TIMEOUT_S,
    IDLE_WINDOW_S,
    START_TIMEOUT_S,
    _median,
    _rounded,
    loopback_sent,
    process_figures,
    stop_process,
)
from scripts.local_cluster import free_ports  # noqa: E402

SERF = "serf"
POLL_S = 0.05
# The line each agent logs as it opens its RPC listener (its "answering" moment).
RPC_STARTING = "==> Starting Serf agent RPC..."
SUSPECT = "has failed, no acks received"


def serf_available() -> str | None:
    """serf's version line, or None when it is not installed."""
    try:
        out = subprocess.run([SERF, "version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.splitlines()[0].strip() if out.returncode == 0 and out.stdout else None


class Log:
    """One agent's standard output, each line stamped with the wall clock on arrival."""

    def __init__(self, stream) -> None:
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            with self._lock:
                self.lines.append((time.time(), raw.decode(errors="replace").rstrip()))

    def snapshot(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self.lines)


class SerfCluster:
    def __init__(self, count: int) -> None:
        self.count = count
        self.root = Path(tempfile.mkdtemp(prefix="serf-bench-"))
        ports = free_ports(2 * count)
        self.bind_ports, self.rpc_ports = ports[:count], ports[count:]
        self.names = [f"s{i}" for i in range(count)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.logs: dict[int, Log] = {}
        key = subprocess.run([SERF, "keygen"], capture_output=True, text=True, timeout=30)
        self.key = key.stdout.strip()

    def rpc(self, i: int) -> str:
        return f"127.0.0.1:{self.rpc_ports[i]}"

    def start(self, i: int) -> None:
        args = [SERF, "agent", f"-node={self.names[i]}", f"-bind=127.0.0.1:{self.bind_ports[i]}",
                f"-rpc-addr={self.rpc(i)}", "-profile=lan", "-log-level=info",
                f"-encrypt={self.key}"]  # fmt: skip
        if i != 0:
            args.append(f"-join=127.0.0.1:{self.bind_ports[0]}")
        process = subprocess.Popen(args, cwd=self.root, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        self.processes[i] = process
        self.logs[i] = Log(process.stdout)

    def answering_at(self, i: int) -> float | None:
        for moment, line in self.logs[i].snapshot():
            if line.startswith(RPC_STARTING):
                return moment
        return None

    def wait(self, condition, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(POLL_S)
        return False

    def events(self, i: int, kind: str) -> list[tuple[float, str]]:
        """(arrival, member name) of each `serf: <kind>: <name> ...` line agent i logged."""
        found = []
        for moment, line in self.logs[i].snapshot():
            _, sep, rest = line.partition(f"serf: {kind}: ")
            if sep:
                found.append((moment, rest.split()[0]))
        return found

    def seen_by_all_at(self, kind: str, subject: str, since: float,
                       among: list[int]) -> float | None:
        """Seconds from `since` until the last of `among` logged `kind` for `subject`."""
        last = since
        for i in among:
            seen = [m for m, name in self.events(i, kind) if name == subject and m >= since]
            if not seen:
                return None
            last = max(last, min(seen))
        return last - since

    def wait_seen_by_all(self, kind: str, subject: str, since: float,
                         among: list[int]) -> float | None:
        """`seen_by_all_at`, once it is known or after `CHANGE_TIMEOUT_S` (then None)."""
        self.wait(lambda: self.seen_by_all_at(kind, subject, since, among) is not None,
                  CHANGE_TIMEOUT_S)  # fmt: skip
        return self.seen_by_all_at(kind, subject, since, among)

    def all_joined_at(self) -> float | None:
        """When the last agent logged the last member it had not yet seen join."""
        last = 0.0
        for i in self.running():
            firsts: dict[str, float] = {}
            for moment, name in self.events(i, "EventMemberJoin"):
                firsts.setdefault(name, moment)
            if set(firsts) < set(self.names):
                return None
            last = max(last, max(firsts.values()))
        return last

    def suspicions(self) -> int:
        return sum(1 for i in self.logs for _, line in self.logs[i].snapshot() if SUSPECT in line)

    def running(self) -> list[int]:
        return sorted(self.processes)

    def process_figures(self, i: int) -> tuple[int, float]:
        return process_figures(self.processes[i].pid)

    def stop(self, i: int, how: int = signal.SIGINT) -> None:
        stop_process(self.processes.pop(i), how)

    def close(self) -> None:
        for i in list(self.processes):
            with contextlib.suppress(Exception):
                self.stop(i, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def bench_serf(count: int) -> dict:
    assert count >= 3, "the tag, failure and leave steps need three agents"
    version = serf_available()
    if version is None:
        raise SystemExit("serf is not installed (Debian: apt-get install serf)")
    cluster = SerfCluster(count)
    try:
        started = time.monotonic()
        cluster.start(0)
        if not cluster.wait(lambda: cluster.answering_at(0) is not None, START_TIMEOUT_S):
            raise RuntimeError("serf agent s0 did not start")
        for i in range(1, count):
            cluster.start(i)
        if not cluster.wait(lambda: all(cluster.answering_at(i) is not None
                                        for i in range(count)), START_TIMEOUT_S):  # fmt: skip
            exited = [name for i, name in enumerate(cluster.names)
                      if i in cluster.processes and cluster.processes[i].poll() is not None]
            raise RuntimeError(f"serf agents did not all start (exited: {exited})")
        answering_s = time.monotonic() - started
        answered_at = max(cluster.answering_at(i) for i in range(count))
        start_cpu = [cluster.process_figures(i)[1] for i in range(count)]
        startup_cpu_s = sum(start_cpu)
        joined = cluster.wait(lambda: cluster.all_joined_at() is not None, CHANGE_TIMEOUT_S)
        join_s = max(0.0, cluster.all_joined_at() - answered_at) if joined else None
        join_cpu_s = sum(cluster.process_figures(i)[1] for i in cluster.running()) - startup_cpu_s

        before_cpu = {i: cluster.process_figures(i)[1] for i in cluster.running()}
        before_lo = loopback_sent()
        window_start = time.monotonic()
        time.sleep(IDLE_WINDOW_S)
        elapsed_s = time.monotonic() - window_start
        after_lo = loopback_sent()
        lo_bytes, lo_packets = after_lo[0] - before_lo[0], after_lo[1] - before_lo[1]
        resident, cpu = [], []
        for i in cluster.running():
            rss, cpu_s = cluster.process_figures(i)
            resident.append(rss / 2**20)
            cpu.append((cpu_s - before_cpu[i]) / elapsed_s)
        false_suspicions = cluster.suspicions()

        changer, changer_name = count - 1, cluster.names[count - 1]
        others = [i for i in cluster.running() if i != changer]
        tag_at = time.time()
        subprocess.run([SERF, "tags", f"-rpc-addr={cluster.rpc(changer)}", "-set", "bench=tagged"],
                       check=True, stdout=subprocess.DEVNULL, timeout=30)  # fmt: skip
        tag_s = cluster.wait_seen_by_all("EventMemberUpdate", changer_name, tag_at, others)

        failed_at = time.time()
        cluster.stop(changer, signal.SIGKILL)
        failure_s = cluster.wait_seen_by_all("EventMemberFailed", changer_name, failed_at, others)

        leaver, leaver_name = count - 2, cluster.names[count - 2]
        stayers = [i for i in cluster.running() if i != leaver]
        left_at = time.time()
        cluster.processes[leaver].send_signal(signal.SIGINT)
        leave_s = cluster.wait_seen_by_all("EventMemberLeave", leaver_name, left_at, stayers)
        cluster.stop(leaver)
        exited = [cluster.names[i] for i, p in cluster.processes.items() if p.poll() is not None]
        return {
            "system": version,
            "agents": count,
            "all_answering_s": round(answering_s, 2),
            "join_s": _rounded(join_s),
            "false_suspicions": false_suspicions,
            "startup_cpu_s_total": round(startup_cpu_s, 2),
            "join_cpu_s_total": round(join_cpu_s, 2),
            "start_cpu_s_median": round(_median(start_cpu), 3),
            "start_cpu_s_max": round(max(start_cpu), 3),
            "idle_window_s": round(elapsed_s, 1),
            "idle_rss_mib_median": round(_median(resident), 1),
            "idle_rss_mib_max": round(max(resident), 1),
            "idle_cpu_per_s_median": round(_median(cpu), 4),
            "idle_loopback_bytes_per_s_per_agent": round(lo_bytes / elapsed_s / count),
            "idle_loopback_packets_per_s_per_agent": round(lo_packets / elapsed_s / count, 1),
            "tag_s": _rounded(tag_s),
            "failure_s": _rounded(failure_s),
            "leave_s": _rounded(leave_s),
            "agents_exited_unexpectedly": exited,
        }
    finally:
        cluster.close()


def format_serf(r: dict) -> str:
    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.2f} s"

    return (
        f"serf n={r['agents']} ({r['system']}): all answering after {r['all_answering_s']:.1f} s; "
        f"all see all alive {seconds(r['join_s'])} later; {r['false_suspicions']} false "
        f"suspicions; agents' CPU in all: {r['startup_cpu_s_total']:.2f} s until all answered, "
        f"{r['join_cpu_s_total']:.2f} s from then until the idle window; idle per agent (median "
        f"over {r['idle_window_s']:.0f} s): {r['idle_rss_mib_median']} MiB resident (max "
        f"{r['idle_rss_mib_max']}), {r['idle_cpu_per_s_median']:.4f} CPU s/s, "
        f"{r['idle_loopback_bytes_per_s_per_agent']} loopback bytes/s "
        f"({r['idle_loopback_packets_per_s_per_agent']} packets/s); tag seen by all in "
        f"{seconds(r['tag_s'])}, failure in {seconds(r['failure_s'])}, leave in "
        f"{seconds(r['leave_s'])}; exited: {r['agents_exited_unexpectedly'] or 'none'}"
    )
