"""Real agents for the CLI tests: `gossipnode init` into a temporary directory, then
`python -m gossipnode agent` as a subprocess on free 127.0.0.1 ports, once per test module.

Every wait is bounded (`WAIT_S`); agents are stopped by PID with SIGTERM, then SIGKILL.
The CLI itself runs in-process through `gossipnode.cli.main` (fast) unless a test needs a
real process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gossipnode.cli import main
from gossipnode.client import AgentUnreachable, ControlClient

REPOSITORY = Path(__file__).resolve().parents[2]
# Bound for every wait in these tests (agent start, gossip, replication); none comes near it.
WAIT_S = 20.0
POLL_S = 0.05
# Anti-entropy rounds only when asked (`repair`), so that tests see what a repair moves;
# patient probes, so that a busy test machine does not make a member suspect (health).
CONFIG_TAIL = (
    "\n[replication]\nanti_entropy_interval_s = 3600\n"
    "\n[membership]\nprobe_interval_s = 2.0\nprobe_timeout_s = 1.5\n"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPOSITORY)
    env.pop("GOSSIPNODE_SOCKET", None)
    return env


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(POLL_S)


@dataclass
class AgentProcess:
    name: str
    data_dir: Path
    port: int
    node_id: str
    process: subprocess.Popen[bytes] | None = None
    terminated: bool = False
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.data_dir.parent / f"{self.name}.log"

    @property
    def config(self) -> Path:
        return self.data_dir / "node.toml"

    @property
    def socket(self) -> Path:
        return self.data_dir / "control.sock"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.terminated = False
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gossipnode", "agent", "--config", str(self.config)],
                stdout=log, stderr=log, env=environment(), cwd=REPOSITORY,
            )
        wait_for(self.answers, f"agent {self.name} to answer on {self.socket}")

    def answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"agent {self.name} exited with {self.process.returncode}: "
                        f"{self.log.read_text()[-2000:]}")
        try:
            return self.request("ping")["name"] == self.name
        except AgentUnreachable:
            return False

    def request(self, verb: str, **arguments: Any) -> Any:
        with ControlClient(self.socket, timeout_s=WAIT_S) as client:
            return client.request(verb, **arguments)

    def terminate(self) -> None:
        """SIGTERM once: a second one would hit the default handler mid-leave."""
        if self.process is not None and self.process.poll() is None and not self.terminated:
            os.kill(self.process.pid, signal.SIGTERM)
            self.terminated = True

    def stop(self) -> None:
        """SIGTERM, and SIGKILL when the agent has not exited within 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def stop_all(agents: list[AgentProcess]) -> None:
    """SIGTERM to all at once (each spends a second announcing its leave), then wait."""
    for agent in agents:
        agent.terminate()
    for agent in agents:
        agent.stop()


def _run_in_process(*arguments: str) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(arguments))
    assert code == 0, arguments
    return output.getvalue()


def make_agent(root: Path, name: str, *flags: str, join: AgentProcess | None = None,
               config_tail: str = CONFIG_TAIL) -> AgentProcess:
    secret = root / "cluster.secret"
    if not secret.exists():
        _run_in_process("keygen", "--out", str(secret))
    port = free_port()
    arguments = ["init", "--data-dir", str(root / name), "--name", name,
                 "--listen", f"127.0.0.1:{port}", "--secret-file", str(secret), *flags]
    if "--admin-pubkey" not in flags:
        arguments.append("--open")
    if join is not None:
        arguments += ["--join", join.address]
    agent = AgentProcess(name, root / name, port, _run_in_process(*arguments).strip())
    with agent.config.open("a") as file:
        file.write(config_tail)
    return agent


class Cluster:
    """Two agents: `a` (WEP, may hold private keys) and `b` (WEP, refuses private keys)."""

    def __init__(self, root: Path) -> None:
        self.a = make_agent(root, "a", "--wep")
        self.b = make_agent(root, "b", "--wep", "--no-private-keys", join=self.a)

    def start(self) -> None:
        self.terminated = False
        self.a.start()
        self.b.start()
        wait_for(self.converged_membership, "a and b to see each other alive")

    def converged_membership(self) -> bool:
        for agent in (self.a, self.b):
            states = {m["name"]: m["state"] for m in agent.request("members")}
            if states != {"a": "alive", "b": "alive"}:
                return False
        return True

    def stop(self) -> None:
        stop_all([self.a, self.b])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Run `gossipnode ARGS...` in-process; returns exit code, stdout and stderr."""

    def run(*arguments: object) -> Outcome:
        capsys.readouterr()
        code = main([str(a) for a in arguments])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def wait() -> Callable[..., Any]:
    """`wait(condition, what)`: poll until truthy, bounded by WAIT_S (see `wait_for`)."""
    return wait_for


@pytest.fixture(scope="session")
def new_agent() -> Callable[..., AgentProcess]:
    """`new_agent(root, name, *init_flags, join=None)`: an initialized, unstarted agent."""
    return make_agent
