"""How the agent's run ends when something fails (runtime/daemon.py `_run`,
commands/agent.py): a disk or store error before the agent serves is a start-up error
(exit 2), the same error while it serves stops it with one line and exit 1, and anything
else is not dressed up as either."""

from __future__ import annotations

import errno
from types import SimpleNamespace

import pytest
import trio

from gossipnode import cli, config_file
from gossipnode.runtime import daemon, logs


class _FailingAgent:
    """Fails with `error` once it serves (or before, if `serve_first` is false)."""

    def __init__(self, error: BaseException, *, serve_first: bool) -> None:
        self.error, self.serve_first, self.serving = error, serve_first, False

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if self.serve_first:  # as Agent.run: serving, then started
            self.serving = True
            task_status.started()
            await trio.lowlevel.checkpoint()
        async with trio.open_nursery() as nursery:  # failures reach _run in a group
            async def fail() -> None:
                raise self.error

            nursery.start_soon(fail)


def _disk_error() -> OSError:
    return OSError(errno.EIO, "Input/output error", "/var/lib/gossipnode/store.db")


def test_a_disk_error_while_serving_stops_the_agent_with_one_line():
    with pytest.raises(daemon.AgentFailed) as caught:
        daemon._run(lambda: _FailingAgent(_disk_error(), serve_first=True))
    assert str(caught.value) == "/var/lib/gossipnode/store.db: Input/output error"


def test_a_disk_error_before_serving_is_a_startup_error():
    with pytest.raises(daemon.StartupError) as caught:
        daemon._run(lambda: _FailingAgent(_disk_error(), serve_first=False))
    assert str(caught.value) == "/var/lib/gossipnode/store.db: Input/output error"


def test_a_bug_while_serving_is_not_reported_as_a_disk_failure():
    with pytest.raises(BaseExceptionGroup) as caught:
        daemon._run(lambda: _FailingAgent(RuntimeError("bug"), serve_first=True))
    assert caught.group_contains(RuntimeError)


def test_the_agent_verb_prints_one_line_and_exits_1_when_the_disk_fails(monkeypatch, capsys,
                                                                          tmp_path):
    def failing_run_agent(path, tail=None):
        raise daemon.AgentFailed("/var/lib/gossipnode/store.db: Input/output error")

    monkeypatch.setattr(config_file, "load_config",
                        lambda path: SimpleNamespace(log_format="text", log_level="info"))
    monkeypatch.setattr(logs, "setup_logging", lambda fmt, level: None)
    monkeypatch.setattr(daemon, "run_agent", failing_run_agent)
    code = cli.main(["agent", "--config", str(tmp_path / "node.toml")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert err == "gossipnode agent: stopped: /var/lib/gossipnode/store.db: Input/output error\n"
