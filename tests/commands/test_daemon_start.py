"""A daemon operators can trust, at start: one agent per data directory, private files
whatever the umask, and every start-up failure one line on stderr with exit 2, the same
line `validate` prints (real agent processes)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from .conftest import REPOSITORY, environment, free_port

pytestmark = pytest.mark.slow

# A failing start exits within this (it stops before serving anything).
START_FAILURE_WAIT_S = 60


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def run_agent(config) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gossipnode", "agent", "--config", str(config)],
        capture_output=True, text=True, env=environment(), cwd=REPOSITORY,
        timeout=START_FAILURE_WAIT_S, check=False,
    )


def one_line(outcome) -> str:
    """The error line. Before it only the agent's own timestamped log lines may come (the
    start may have logged, say, a permission fix); never a traceback."""
    lines = outcome.stderr.splitlines()
    assert "Traceback" not in outcome.stderr and lines, outcome.stderr
    assert all(line[:4].isdigit() for line in lines[:-1]), outcome.stderr
    return lines[-1]


def test_one_agent_per_data_directory_with_private_files(tmp_path, new_agent, cli):
    data = tmp_path / "solo"
    data.mkdir()
    os.chmod(data, 0o755)
    solo = new_agent(tmp_path, "solo")  # `init` into the existing 0755 directory
    assert mode(data) == 0o700
    assert mode(solo.config) == 0o600 and mode(data / "identity.key") == 0o600
    # A careless copy, and a permissive umask: the agent fixes both and says so.
    os.chmod(data, 0o755)
    os.chmod(solo.config, 0o644)
    old_umask = os.umask(0o022)
    try:
        solo.start()
    finally:
        os.umask(old_umask)
    try:
        assert cli("put", "groups", "g1", "--value", "{}", "--socket", solo.socket).code == 0
        fixed = [line for line in solo.log.read_text().splitlines()
                 if "made the data directory private" in line]
        assert len(fixed) == 1 and f"{data} 0755 -> 0700" in fixed[0]
        assert "node.toml 0644 -> 0600" in fixed[0]
        assert mode(data) == 0o700
        files = {p.name: mode(p) for p in data.iterdir() if p.is_file()}
        for name in ("store.sqlite3", "store.sqlite3-wal", "store.sqlite3-shm",
                     "identity.key", "replica.marker", "agent.lock", "node.toml"):
            assert files.get(name) == 0o600, (name, files)
        assert set(files.values()) == {0o600}, files

        # A second agent on the same directory, on other ports and another socket.
        marker = (data / "replica.marker").read_bytes()
        second = tmp_path / "second.toml"
        second.write_text(
            solo.config.read_text()
            .replace(f'"127.0.0.1:{solo.port}"', f'"127.0.0.1:{free_port()}"')
            .replace('control_socket = "control.sock"',
                     f'control_socket = "{tmp_path / "second.sock"}"')
            .replace('data_dir = "."', f'data_dir = "{data}"')
        )
        refused = run_agent(second)
        assert refused.returncode == 2
        assert one_line(refused) == (f"gossipnode agent: {data}: another agent "
                                     f"(PID {solo.process.pid}) is running on this data "
                                     "directory")
        assert (data / "replica.marker").read_bytes() == marker  # untouched
        assert solo.request("ping")["name"] == "solo"  # the first keeps serving

        _every_start_failure_is_one_line(tmp_path, new_agent, cli, solo)
    finally:
        solo.stop()
    assert solo.process.returncode == 0


def _every_start_failure_is_one_line(tmp_path, new_agent, cli, live) -> None:
    broken = new_agent(tmp_path, "broken")
    # The same config, one folder up: relative paths made absolute.
    good = (broken.config.read_text()
            .replace('data_dir = "."', f'data_dir = "{broken.data_dir}"')
            .replace('control_socket = "control.sock"',
                     f'control_socket = "{broken.data_dir / "control.sock"}"'))
    variant = tmp_path / "variant.toml"

    def agent_and_validate(text: str, *, validate_code: int = 2) -> tuple[str, str]:
        variant.write_text(text)
        started = run_agent(variant)
        assert started.returncode == 2, started.stderr
        checked = cli("validate", "--config", variant)
        assert checked.code == validate_code, checked.err
        return one_line(started), checked.err.strip()

    # A busy port: only the start can find it.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        line, _ = agent_and_validate(good.replace(str(broken.port), str(busy)),
                                     validate_code=0)
        assert line == f"gossipnode agent: listen 127.0.0.1:{busy}: address already in use"
    # A control socket another agent answers on.
    line, _ = agent_and_validate(good.replace(str(broken.data_dir / "control.sock"),
                                              str(live.socket)),
                                 validate_code=0)
    assert line == (f"gossipnode agent: {live.socket}: another agent is answering on this "
                    "socket")
    # Configs the agent cannot run: validate says exactly what the agent says.
    for text, message in (
        (good.replace("anti_entropy_interval_s = 3600", "anti_entropy_interval_s = 0"),
         "replication.anti_entropy_interval_s: must be positive, got 0.0"),
        (good.replace("probe_timeout_s = 1.5", "probe_timeout_s = 2.5"),
         "membership.probe_timeout_s: must be shorter than membership.probe_interval_s"),
        (good.replace("secret_files = [", 'secret_files = ["/nonexistent/secret", '),
         "/nonexistent/secret: no such file (the cluster secret)"),
        (good.replace(f'data_dir = "{broken.data_dir}"', 'data_dir = "missing"'),
         "data_dir: "),
        (good + "\n[wire]\nframe_bytes_max = 1000\n",
         "limits.record_bytes_max: a record of 1048576 bytes"),
        (good.replace('log_format = "text"', 'log_format = "xml"'), "log_format: expected"),
    ):
        line, checked = agent_and_validate(text)
        assert message in line, (message, line)
        assert line.removeprefix("gossipnode agent: ") == checked.removeprefix(
            "gossipnode validate: ")
    # An identity that cannot be read (a directory in its place).
    os.rename(broken.data_dir / "identity.key", broken.data_dir / "identity.saved")
    (broken.data_dir / "identity.key").mkdir()
    line, checked = agent_and_validate(good)
    assert "identity.key: cannot read the identity key" in line
    assert line.removeprefix("gossipnode agent: ") == checked.removeprefix(
        "gossipnode validate: ")
