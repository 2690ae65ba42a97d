"""The control client's reading and timing out (gossipnode/client.py), against a fake agent
in a thread: replies split over many receives or several in one, a reply larger than one
receive, and an agent that never answers (the socket's own timeout ends the wait)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gossipnode.client import RECEIVE_BYTES, AgentUnreachable, ControlClient

# The fake agent gives up on its client after this long.
SERVE_TIMEOUT_S = 10.0
# The client's reply timeout in the test of an agent that never answers.
SHORT_TIMEOUT_S = 0.3


def _reply(result: object) -> bytes:
    return json.dumps({"ok": True, "result": result}).encode() + b"\n"


@pytest.fixture
def fake_agent(tmp_path: Path) -> Iterator[Callable[[Callable[[socket.socket], None]], Path]]:
    """Serves one connection with the given function in a thread; returns the socket path."""
    path = tmp_path / "fake.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(SERVE_TIMEOUT_S)
    threads = []

    def serve_with(behaviour: Callable[[socket.socket], None]) -> Path:
        def run() -> None:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(SERVE_TIMEOUT_S)
                behaviour(connection)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return path

    try:
        yield serve_with
    finally:
        listener.close()
        for thread in threads:
            thread.join(timeout=SERVE_TIMEOUT_S)


def _read_requests(connection: socket.socket, count: int) -> list[dict]:
    data = b""
    while data.count(b"\n") < count:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_replies_split_over_receives_or_sharing_one_are_each_read_whole(fake_agent):
    big = "z" * (3 * RECEIVE_BYTES + 17)

    def behaviour(connection: socket.socket) -> None:
        assert [r["verb"] for r in _read_requests(connection, 1)] == ["first"]
        data = _reply(big) + _reply("second") + _reply("third")[:5]
        for start in range(0, len(data), 1000):  # in small pieces, a pause between
            connection.sendall(data[start:start + 1000])
            time.sleep(0.0005)
        _read_requests(connection, 2)
        connection.sendall(_reply("third")[5:])

    with ControlClient(fake_agent(behaviour)) as client:
        assert client.request("first") == big
        assert client.request("second") == "second"  # already read with the first
        assert client.request("third") == "third"  # its start came with the first too


def test_an_agent_that_never_answers_times_out(fake_agent):
    gone = threading.Event()

    def behaviour(connection: socket.socket) -> None:
        _read_requests(connection, 1)
        gone.wait(SERVE_TIMEOUT_S)  # holds the connection open, silent

    path = fake_agent(behaviour)
    started = time.monotonic()
    with ControlClient(path, timeout_s=SHORT_TIMEOUT_S) as client, \
            pytest.raises(AgentUnreachable) as failure:
        client.request("ping")
    gone.set()
    assert str(failure.value) == f"lost the agent on {path}: timed out"
    assert SHORT_TIMEOUT_S * 0.9 <= time.monotonic() - started < SERVE_TIMEOUT_S / 2
