"""The control socket itself, against one real agent: mode 0600, a stale socket file is
replaced but a live agent's socket is never stolen, malformed requests of every kind leave
the agent serving (and a connection usable when the request could be framed), and `put`
survives kill -9 of the agent right after it returns."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[2]
# Replies to a client on this socket arrive within this many seconds.
REPLY_TIMEOUT_S = 10.0
# Over the agent's REQUEST_BYTES_MAX (4 MiB): the agent answers once and hangs up.
HUGE_LINE_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def lone(tmp_path_factory, new_agent) -> Iterator[object]:
    root = tmp_path_factory.mktemp("lone")
    agent = new_agent(root, "solo")
    # A socket file left behind by an agent that died: bound, never listening, closed.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(agent.socket))
    stale.close()
    assert agent.socket.exists()
    try:
        agent.start()
        yield agent
    finally:
        agent.stop()


class Raw:
    """A raw client that sends exact bytes and reads exact reply lines."""

    def __init__(self, path: object) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socket.settimeout(REPLY_TIMEOUT_S)
        self.socket.connect(str(path))
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def reply(self) -> dict | None:
        """The next reply line, or None when the agent closed the connection."""
        while b"\n" not in self.buffer:
            data = self.socket.recv(65536)
            if not data:
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def ask(self, data: bytes) -> dict | None:
        self.send(data)
        return self.reply()

    def close(self) -> None:
        self.socket.close()


def _ping_works(raw: Raw) -> bool:
    reply = raw.ask(b'{"verb": "ping"}\n')
    return reply is not None and reply["ok"] is True and reply["result"]["name"] == "solo"


def test_socket_is_mode_0600(lone):
    mode = os.stat(lone.socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_a_stale_socket_file_was_replaced(lone, cli):
    # The fixture left a dead socket file at the path before the agent started.
    outcome = cli("status", "--socket", lone.socket, "--json")
    assert outcome.code == 0 and outcome.json()["node"]["name"] == "solo"


FRAMED_GARBAGE = [
    b"{not json\n",
    b"[1, 2, 3]\n",
    b'"just a string"\n',
    b"42\n",
    b"null\n",
    b"\xff\xfe\xfd\n",
    b"{}\n",
    b'{"verb": "explode"}\n',
    b'{"verb": 5}\n',
    b'{"verb": "get", "dataset": 5, "key": "k"}\n',
    b'{"verb": "list", "dataset": "groups", "limit": "many"}\n',
    b'{"verb": "put", "dataset": "groups", "key": "k", "value": {"$bytes": "!!"}}\n',
    b'{"verb": "put", "dataset": "groups", "key": "k", "value": [1]}\n',
    b'{"verb": "tags_set", "tags": {"wep": 1}}\n',
    b'{"verb": "policy_wep", "replicas": 1e400}\n',
    b"[" * 100_000 + b"]" * 100_000 + b"\n",
    b"x" * (3 * 1024 * 1024) + b"\n",
]


def test_framed_garbage_gets_error_replies_and_the_connection_stays_usable(lone):
    raw = Raw(lone.socket)
    try:
        sent = 0
        for _ in range(4):
            for request in FRAMED_GARBAGE:
                reply = raw.ask(request)
                assert reply is not None, request[:40]
                assert reply["ok"] is False and isinstance(reply["error"], str)
                assert "\n" not in reply["error"] and reply["exit"] == 2
                sent += 1
            assert _ping_works(raw)
        assert sent >= 60
        raw.send(b"\n\n   \n")  # blank lines are skipped, not answered
        assert _ping_works(raw)
    finally:
        raw.close()
    log = lone.log.read_text()  # every request was refused, none was a crash
    assert "Traceback" not in log and "internal error" not in log


def test_unframeable_requests_close_only_their_own_connection(lone):
    bystander = Raw(lone.socket)
    try:
        for round_number in range(10):
            # A line over the limit: one error reply, then the agent hangs up.
            huge = Raw(lone.socket)
            # The agent may hang up before we finish sending: also fine.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                huge.send(b"y" * HUGE_LINE_BYTES)
            try:
                reply = huge.reply()
            except ConnectionResetError:
                reply = None
            assert reply is None or (reply["ok"] is False and "request over" in reply["error"])
            huge.close()
            # Half-closed mid-request: the agent sees EOF and closes its end.
            half = Raw(lone.socket)
            half.send(b'{"verb": "pi')
            half.socket.shutdown(socket.SHUT_WR)
            assert half.reply() is None
            half.close()
            # Connect and vanish; start a monitor and vanish.
            Raw(lone.socket).close()
            monitor = Raw(lone.socket)
            assert monitor.ask(b'{"verb": "monitor"}\n')["ok"] is True
            monitor.close()
            assert _ping_works(bystander), round_number
    finally:
        bystander.close()
    assert lone.process.poll() is None  # still running
    log = lone.log.read_text()
    assert "Traceback" not in log and "internal error" not in log


def test_a_live_agents_socket_is_never_stolen(lone, new_agent, tmp_path):
    thief = new_agent(tmp_path, "thief")
    text = thief.config.read_text()
    assert 'control_socket = "control.sock"' in text
    thief.config.write_text(text.replace('control_socket = "control.sock"',
                                         f"control_socket = {json.dumps(str(lone.socket))}"))
    with thief.log.open("wb") as log:
        process = subprocess.run(
            [sys.executable, "-m", "gossipnode", "agent", "--config", str(thief.config)],
            stdout=log, stderr=log, timeout=60, check=False,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        )
    assert process.returncode != 0
    assert "another agent is answering" in thief.log.read_text()
    raw = Raw(lone.socket)
    try:
        assert _ping_works(raw)
    finally:
        raw.close()


def test_put_is_durable_when_it_returns(lone, cli, wait):
    for index in range(5):
        outcome = cli("put", "groups", f"durable-{index}", "--value", json.dumps({"i": index}),
                      "--socket", lone.socket)
        assert outcome.code == 0, outcome.err
    lone.process.kill()  # kill -9: no flush, no goodbye
    lone.process.wait(timeout=10)
    assert lone.socket.exists()  # left behind: the restart must replace it
    lone.start()
    for index in range(5):
        got = cli("get", "groups", f"durable-{index}", "--socket", lone.socket)
        assert got.code == 0, got.err
        assert got.json() == {"i": index}


def test_idle_clients_never_lock_the_operator_out(lone):
    from gossipnode.runtime.control_clients import CLIENTS_MAX, CLIENTS_PER_USER_MAX

    opened = []
    try:
        oldest = Raw(lone.socket)
        assert _ping_works(oldest)
        opened.append(oldest)
        # Monitors hold their connection open for good: fill this user's share with them.
        for _ in range(CLIENTS_PER_USER_MAX - 1):
            monitor = Raw(lone.socket)
            assert monitor.ask(b'{"verb": "monitor"}\n')["ok"] is True
            opened.append(monitor)
        # Far more clients than the agent admits in all: each still gets in, because the
        # oldest idle connection of the same user is closed to make room.
        for _ in range(CLIENTS_MAX + 1):
            newcomer = Raw(lone.socket)
            assert _ping_works(newcomer)
            opened.append(newcomer)
        assert oldest.reply() is None  # the oldest idle one was closed first
        assert _ping_works(opened[-1]) and _ping_works(opened[-2])  # the newest stay
        log = lone.log.read_text()
        assert "closed the oldest idle control client of" in log
    finally:
        for raw in opened:
            raw.close()
