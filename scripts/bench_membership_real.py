"""Membership with real agents on 127.0.0.1 (`bench_membership.py --real N`).

For each N: N agents are initialised and started together, every one joining the first
(the first joins the second). Then, measured with wall clocks and the control socket:
1. join_s: from the moment the last agent answered its control socket until every agent
   sees every agent alive (what serf's benchmark calls "all members see all alive"): the
   time of the last "is alive" line in the agents' logs once polling saw all alive
   (join_polled_s: until the logs showed it and a round of control requests confirmed it);
2. false_suspicions: suspicions raised by agents' own failed probes during the join and an
   idle window after it, while every agent is alive (so every one is false);
3. start-up CPU, per agent: CPU seconds (user + system) each agent had spent when it
   was seen answering its control socket (imports, store, digests: what delays its first
   probes when many agents start at once on few cores); median and max;
4. idle, per agent, over `IDLE_WINDOW_S`: resident memory (VmRSS), CPU seconds per second,
   and bytes sent per second (encoded payloads plus each frame's 4-byte length and 16-byte
   tag; TCP/IP headers not counted); and the loopback interface's transmitted bytes and
   packets over the window divided by the agents (headers and bare ACKs included: the
   figure `--serf` compares, so nothing else should use 127.0.0.1 meanwhile);
5. tag_s: one agent changes a tag; until every other agent shows it;
6. failure_s: one agent is killed (SIGKILL); until every other agent holds it dead;
7. leave_s: one agent stops (SIGTERM, a graceful leave); until every other agent holds it
   left.
   Steps 5 to 7 are timed from the request (or signal) to the last agent's log line of
   the change, as join_s is. Every wait watches the agents' logs (which costs the agents
   nothing), then confirms with one round of control requests to every agent; the
   *_polled_s figures are the time until that confirmation (late by up to a log read and
   a round of requests, about 0.3 s at 50 agents).
Every process started is stopped again by its PID; the data directories are removed.
With `--profile DIR`, agent b1 (one that joins another) runs under cProfile and is stopped
(SIGTERM) as soon as all see all alive, so that its statistics, written to DIR/n<N>.prof,
cover its start-up and the join only; the later steps run without it.
The package's bytecode is written first (`precompile`), as an installed package has it.
Printed too: the agents' CPU seconds in all until they answered (start-up) and from then
until all saw all alive (the join's own work), which tell more than wall times on a
shared machine.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gossipnode.client import AgentUnreachable, ClientError, ControlClient  # noqa: E402
from scripts.local_cluster import free_ports  # noqa: E402

# Every wait is bounded: an agent answers within this after starting...
START_TIMEOUT_S = 120.0
# ... and every membership change is seen by all within this, or reported as never.
CHANGE_TIMEOUT_S = 120.0
# Idle measurement window after the join: one push-pull interval (membership's default),
# so that every agent's periodic state exchange falls in it once, besides many probe and
# gossip intervals.
IDLE_WINDOW_S = 30.0
# Agents initialised at once (each `gossipnode init` is a Python start-up).
INIT_PARALLEL = 4
POLL_S = 0.05
# Waits read the agents' logs this often (no work for the agents); one round of control
# requests then confirms what the logs said. Polling 50 control sockets every 50 ms
# instead cost the agents a good part of both cores while they were being measured.
LOG_POLL_S = 0.25
STOP_TIMEOUT_S = 10.0
# Counters summed over the agents once all see all alive (`info`: section, counter): what
# the join cost in handshakes (mutual dials: runtime/links.py rule 7) and in reconciliation
# sessions (core/sync.py rule 8 skips those over data both ends advertised equal).
JOIN_COUNTERS = (
    ("wire", "handshakes_completed"),
    ("wire", "dials_cancelled"),
    ("wire", "dials_given_up"),
    ("replication", "anti_entropy_sessions_started"),
    ("replication", "sessions_skipped_agreed"),
    ("membership", "roots_sent"),
    ("membership", "roots_received"),
)
# Bytes a frame adds to its payload on the wire: 4-byte length prefix, 16-byte AEAD tag.
FRAME_OVERHEAD_BYTES = 20
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _gossipnode(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gossipnode", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _request(directory: Path, verb: str, **arguments: object) -> object:
    with ControlClient(directory / "control.sock") as client:
        return client.request(verb, **arguments)


def _wait(condition, timeout_s: float, poll_s: float = POLL_S) -> float | None:
    """Seconds until `condition()` held (polled), or None after `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        with contextlib.suppress(AgentUnreachable, ClientError, OSError):
            if condition():
                return time.monotonic() - started
        time.sleep(poll_s)
    return None


# The agent run under cProfile with --profile: one that joins another, as most do.
PROFILED_AGENT = 1
# Runs `gossipnode` under cProfile timed by the process's CPU clock (argv: the stats file,
# then gossipnode's arguments): wall time on a shared machine counts others' work too.
PROFILE_RUNNER = """
import cProfile, runpy, sys, time
out, sys.argv = sys.argv[1], ["gossipnode", *sys.argv[2:]]
profile = cProfile.Profile(time.process_time)
try:
    profile.runcall(runpy.run_module, "gossipnode", run_name="__main__")
finally:
    profile.dump_stats(out)
"""


class RealCluster:
    def __init__(self, count: int, profile_to: Path | None = None) -> None:
        self.count = count
        self.profile_to = profile_to
        self.root = Path(tempfile.mkdtemp(prefix="gn-bench-"))
        self.ports = free_ports(count)
        self.names = [f"b{i}" for i in range(count)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        secret = self.root / "cluster.secret"
        if _gossipnode("keygen", "--out", str(secret)).wait(timeout=60) != 0:
            raise RuntimeError("gossipnode keygen failed")
        pending = list(range(count))
        while pending:
            batch, pending = pending[:INIT_PARALLEL], pending[INIT_PARALLEL:]
            runs = [_gossipnode(*self._init_args(i, secret)) for i in batch]
            for run in runs:
                _, error = run.communicate(timeout=120)
                if run.returncode != 0:
                    raise RuntimeError(f"gossipnode init failed: {error.decode().strip()}")

    def _init_args(self, i: int, secret: Path) -> list[str]:
        seed = 1 if i == 0 else 0
        return ["init", "--data-dir", str(self.directory(i)), "--name", self.names[i],
                "--listen", f"127.0.0.1:{self.ports[i]}", "--secret-file", str(secret),
                "--join", f"127.0.0.1:{self.ports[seed]}", "--open"]  # fmt: skip

    def directory(self, i: int) -> Path:
        return self.root / self.names[i]

    def start_all(self) -> None:
        for i in range(self.count):
            log = (self.root / f"{self.names[i]}.log").open("ab")
            profiler = (["-c", PROFILE_RUNNER, str(self.profile_to)]
                        if self.profile_to is not None and i == PROFILED_AGENT
                        else ["-m", "gossipnode"])
            self.processes[i] = subprocess.Popen(
                [sys.executable, *profiler, "agent", "--config",
                 str(self.directory(i) / "node.toml")],
                cwd=ROOT, stdout=log, stderr=log,
            )  # fmt: skip
            log.close()

    def wait_answering(self) -> list[float]:
        """Wait until every agent answers; returns the CPU seconds each had spent by then."""
        cpu = []
        for i in range(self.count):
            if _wait(lambda i=i: _request(self.directory(i), "ping") is not None,
                     START_TIMEOUT_S) is None:  # fmt: skip
                raise RuntimeError(f"{self.names[i]} did not answer; see {self.root}")
            cpu.append(self.process_figures(i)[1])
        return cpu

    def last_alive_at(self) -> float:
        """Wall time of the last "member ... is alive" line in any agent's log."""
        last = 0.0
        for i in range(self.count):
            for moment, _, state in self.member_lines(i):
                if state == "alive":
                    last = max(last, moment)
        return last

    def member_lines(self, i: int) -> list[tuple[float, str, str]]:
        """(wall time, member name, state) of each "member ... is <state>" line agent i
        logged (each change of a member it saw: a new tag logs "is alive" again)."""
        lines = []
        for line in (self.root / f"{self.names[i]}.log").read_text().splitlines():
            words = line.split()
            if line[:1].isdigit() and len(words) > 5 and words[3] == "member" and words[-2] == "is":
                moment = datetime.datetime.strptime(words[0], "%Y-%m-%dT%H:%M:%S.%fZ")
                lines.append((moment.replace(tzinfo=datetime.UTC).timestamp(), words[4], words[-1]))
        return lines

    def logged_views(self, among: list[int]) -> dict[int, dict[str, str]]:
        """Agent -> member name -> the state it last logged for that member."""
        return {i: {name: state for _, name, state in self.member_lines(i)} for i in among}

    def wait(self, logged, polled) -> float | None:
        """Seconds until the logs show `logged()` and one round of control requests then
        confirms `polled()` (polled on, as before, if the logs were wrong), or None."""
        started = time.monotonic()
        if _wait(logged, CHANGE_TIMEOUT_S, LOG_POLL_S) is None:
            return None
        remaining_s = max(0.0, CHANGE_TIMEOUT_S - (time.monotonic() - started))
        if _wait(polled, remaining_s, POLL_S) is None:
            return None
        return time.monotonic() - started

    def seen_by_all_at(self, subject: str, state: str, since: float,
                       among: list[int]) -> float | None:
        """When the last of `among` logged `subject` in `state` at `since` or later (each
        agent's first such line): the moment the change had reached all, from the agents'
        own clocks rather than from polling them one after another."""
        last = since
        for i in among:
            seen = [moment for moment, name, logged in self.member_lines(i)
                    if name == subject and logged == state and moment >= since]
            if not seen:
                return None
            last = max(last, min(seen))
        return last - since

    def running(self) -> list[int]:
        return sorted(self.processes)

    def members(self, i: int) -> dict[str, dict]:
        return {row["name"]: row for row in _request(self.directory(i), "members")}

    def all_see(self, predicate, among: list[int]) -> bool:
        return all(predicate(self.members(i)) for i in among)

    def info(self, i: int) -> dict:
        return _request(self.directory(i), "info")

    def summed(self, counters: tuple[tuple[str, str], ...]) -> dict[str, int]:
        """Each `info` counter summed over the running agents (absent counts 0)."""
        total = dict.fromkeys((name for _, name in counters), 0)
        for i in self.running():
            info = self.info(i)
            for section, name in counters:
                total[name] += int(info.get(section, {}).get(name, 0))
        return total

    def sent_bytes(self, i: int) -> Counter[str]:
        """Bytes agent i sent so far, by message type (framing included)."""
        sent: Counter[str] = Counter()
        for line in str(_request(self.directory(i), "metrics")).splitlines():
            kind = line.split('type="', 1)[1].split('"', 1)[0] if 'type="' in line else ""
            if line.startswith("gossipnode_gossip_bytes_sent_total{"):
                sent[kind] += int(float(line.rsplit(" ", 1)[1]))
            elif line.startswith("gossipnode_gossip_messages_sent_total{"):
                sent[kind] += FRAME_OVERHEAD_BYTES * int(float(line.rsplit(" ", 1)[1]))
        return sent

    def process_figures(self, i: int) -> tuple[int, float]:
        """(resident bytes, CPU seconds so far) of agent i, from /proc."""
        return process_figures(self.processes[i].pid)

    def stop(self, i: int, how: int = signal.SIGTERM) -> None:
        stop_process(self.processes.pop(i), how)

    def close(self) -> None:
        for i in list(self.processes):
            with contextlib.suppress(Exception):
                self.stop(i)
        shutil.rmtree(self.root, ignore_errors=True)


def process_figures(pid: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds so far) of process `pid`, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    return resident, cpu_s


def stop_process(process: subprocess.Popen[bytes], how: int) -> None:
    """Send `how` to a process this benchmark started, then kill it if it has not ended
    within STOP_TIMEOUT_S."""
    process.send_signal(how)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def loopback_sent() -> tuple[int, int]:
    """(bytes, packets) the loopback interface has transmitted so far (/proc/net/dev):
    every packet between agents on 127.0.0.1, IP and TCP/UDP headers and bare ACKs included."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            fields = counters.split()
            return int(fields[8]), int(fields[9])
    raise RuntimeError("no loopback interface in /proc/net/dev")


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def precompile() -> None:
    """Write the package's bytecode before the agents start. An installed gossipnode has it
    (pip compiles at install); a checkout run with PYTHONDONTWRITEBYTECODE set would make
    every agent compile every module it imports at each start, about a third of its
    start-up CPU, which no operator's agent pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "gossipnode")],
                   stdout=subprocess.DEVNULL, check=True, timeout=300)  # fmt: skip


def bench_real(count: int, profile_dir: str | None = None) -> dict:
    assert count >= 3, "the tag, failure and leave steps need three agents"
    assert profile_dir is None or count >= 5, "--profile needs five agents (one stops early)"
    precompile()
    profile_to = None
    if profile_dir is not None:
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        profile_to = Path(profile_dir).resolve() / f"n{count}.prof"
    cluster = RealCluster(count, profile_to)
    try:
        started = time.monotonic()
        cluster.start_all()
        start_cpu = cluster.wait_answering()
        answering_s = time.monotonic() - started
        answered_at = time.time()
        startup_cpu_s = sum(cluster.process_figures(i)[1] for i in cluster.running())
        everyone = set(cluster.names)

        def all_alive(rows: dict[str, dict]) -> bool:
            return {name for name, row in rows.items() if row["state"] == "alive"} >= everyone

        def all_alive_logged() -> bool:
            views = cluster.logged_views(cluster.running())
            return all(views[i].get(name) == "alive" for i in views
                       for name in everyone - {cluster.names[i]})  # fmt: skip

        polled_s = cluster.wait(all_alive_logged,
                                lambda: cluster.all_see(all_alive, cluster.running()))
        # Polling 50 control sockets takes a while on a busy machine: the moment the last
        # view became complete is the last "is alive" line any agent logged.
        join_s = None if polled_s is None else max(0.0, cluster.last_alive_at() - answered_at)
        join_cpu_s = sum(cluster.process_figures(i)[1] for i in cluster.running()) - startup_cpu_s
        join_counters = cluster.summed(JOIN_COUNTERS)
        if profile_to is not None:
            cluster.stop(PROFILED_AGENT)

        # Idle: every agent is alive, so every suspicion raised so far and now is false.
        before = {i: (cluster.sent_bytes(i), cluster.process_figures(i)[1])
                  for i in cluster.running()}  # fmt: skip
        before_lo = loopback_sent()
        window_start = time.monotonic()
        time.sleep(IDLE_WINDOW_S)
        elapsed_s = time.monotonic() - window_start
        after_lo = loopback_sent()
        lo_bytes, lo_packets = after_lo[0] - before_lo[0], after_lo[1] - before_lo[1]
        resident, cpu, sent = [], [], []
        by_type: Counter[str] = Counter()
        for i in cluster.running():
            rss, cpu_s = cluster.process_figures(i)
            resident.append(rss / 2**20)
            cpu.append((cpu_s - before[i][1]) / elapsed_s)
            delta = cluster.sent_bytes(i) - before[i][0]
            by_type.update(delta)
            sent.append(delta.total() / elapsed_s)
        false_suspicions = sum(
            cluster.info(i)["membership"].get("suspicions_raised", 0) for i in cluster.running()
        )

        # A tag change on the last agent. Each figure is taken from the agents' logs (the
        # moment the last of them logged the change); the polled figure, which adds a
        # round of control requests to every agent, is kept beside it.
        changer, changer_name = count - 1, cluster.names[count - 1]
        others = [i for i in cluster.running() if i != changer]
        tag_at = time.time()
        _request(cluster.directory(changer), "tags_set", tags={"bench": "tagged"})
        tag_polled_s = cluster.wait(
            lambda: cluster.seen_by_all_at(changer_name, "alive", tag_at, others) is not None,
            lambda: cluster.all_see(
                lambda rows: rows[changer_name]["tags"].get("bench") == "tagged", others),
        )  # fmt: skip
        tag_s = cluster.seen_by_all_at(changer_name, "alive", tag_at, others)

        # The same agent fails.
        failed_at = time.time()
        cluster.stop(changer, signal.SIGKILL)
        failure_polled_s = cluster.wait(
            lambda: cluster.seen_by_all_at(changer_name, "dead", failed_at, others) is not None,
            lambda: cluster.all_see(lambda rows: rows[changer_name]["state"] == "dead", others),
        )
        failure_s = cluster.seen_by_all_at(changer_name, "dead", failed_at, others)

        # Another one leaves.
        leaver, leaver_name = count - 2, cluster.names[count - 2]
        stayers = [i for i in cluster.running() if i != leaver]
        left_at = time.time()
        cluster.processes[leaver].send_signal(signal.SIGTERM)
        leave_polled_s = cluster.wait(
            lambda: cluster.seen_by_all_at(leaver_name, "left", left_at, stayers) is not None,
            lambda: cluster.all_see(lambda rows: rows[leaver_name]["state"] == "left", stayers),
        )
        leave_s = cluster.seen_by_all_at(leaver_name, "left", left_at, stayers)
        cluster.stop(leaver)
        exited = [cluster.names[i] for i, p in cluster.processes.items() if p.poll() is not None]
        return {
            "agents": count,
            "all_answering_s": round(answering_s, 2),
            "join_s": None if join_s is None else round(join_s, 2),
            "join_polled_s": None if polled_s is None else round(polled_s, 2),
            "false_suspicions": false_suspicions,
            "startup_cpu_s_total": round(startup_cpu_s, 2),
            "join_cpu_s_total": round(join_cpu_s, 2),
            "join_counters": join_counters,
            "start_cpu_s_median": round(_median(start_cpu), 3),
            "start_cpu_s_max": round(max(start_cpu), 3),
            "idle_window_s": round(elapsed_s, 1),
            "idle_rss_mib_median": round(_median(resident), 1),
            "idle_rss_mib_max": round(max(resident), 1),
            "idle_cpu_per_s_median": round(_median(cpu), 4),
            "idle_bytes_sent_per_s_median": round(_median(sent)),
            "idle_loopback_bytes_per_s_per_agent": round(lo_bytes / elapsed_s / count),
            "idle_loopback_packets_per_s_per_agent": round(lo_packets / elapsed_s / count, 1),
            "idle_bytes_sent_per_s_by_type": {
                kind: round(total / elapsed_s / count, 1) for kind, total in sorted(by_type.items())
            },
            "tag_s": _rounded(tag_s),
            "tag_polled_s": _rounded(tag_polled_s),
            "failure_s": _rounded(failure_s),
            "failure_polled_s": _rounded(failure_polled_s),
            "leave_s": _rounded(leave_s),
            "leave_polled_s": _rounded(leave_polled_s),
            "agents_exited_unexpectedly": exited,
        }
    finally:
        cluster.close()


def format_real(r: dict) -> str:
    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.2f} s"

    return (
        f"real n={r['agents']}: all answering after {r['all_answering_s']:.1f} s; "
        f"all see all alive {seconds(r['join_s'])} later (polled {seconds(r['join_polled_s'])}); "
        f"{r['false_suspicions']} false suspicions; agents' CPU in all: "
        f"{r['startup_cpu_s_total']:.1f} s until all answered, {r['join_cpu_s_total']:.1f} s "
        f"from then until all saw all alive; start-up CPU per agent "
        f"{r['start_cpu_s_median']:.2f} s (max {r['start_cpu_s_max']:.2f}); idle per agent "
        f"(median over {r['idle_window_s']:.0f} s): {r['idle_rss_mib_median']} MiB resident "
        f"(max {r['idle_rss_mib_max']}), {r['idle_cpu_per_s_median']:.3f} CPU s/s, "
        f"{r['idle_bytes_sent_per_s_median']} bytes/s sent (mean by type: "
        f"{', '.join(f'{k} {v}' for k, v in r['idle_bytes_sent_per_s_by_type'].items())}; "
        f"{r['idle_loopback_bytes_per_s_per_agent']} loopback bytes/s with headers, "
        f"{r['idle_loopback_packets_per_s_per_agent']} packets/s); "
        f"tag seen by all in {seconds(r['tag_s'])} (polled {seconds(r['tag_polled_s'])}), "
        f"failure in {seconds(r['failure_s'])} (polled {seconds(r['failure_polled_s'])}), "
        f"leave in {seconds(r['leave_s'])} (polled {seconds(r['leave_polled_s'])}); "
        f"exited: {r['agents_exited_unexpectedly'] or 'none'}; join counters (all agents): "
        f"{', '.join(f'{k} {v}' for k, v in r['join_counters'].items())}"
    )
