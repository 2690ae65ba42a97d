"""The CLI against a fake agent that misbehaves: every failure is one line and exit 2,
never a traceback. No real agent here: a thread answers on a Unix socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# The fake agent serves one connection and gives up after this long.
SERVE_TIMEOUT_S = 10.0


def _serve_once(listener: socket.socket, answer: bytes | None) -> None:
    listener.settimeout(SERVE_TIMEOUT_S)
    try:
        connection, _ = listener.accept()
    except TimeoutError:
        return
    with connection:
        connection.settimeout(SERVE_TIMEOUT_S)
        connection.recv(65536)
        if answer is not None:
            connection.sendall(answer)


@pytest.fixture
def fake_agent(tmp_path: Path) -> Iterator[object]:
    path = tmp_path / "fake.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    threads = []

    def answer_with(answer: bytes | None) -> Path:
        thread = threading.Thread(target=_serve_once, args=(listener, answer), daemon=True)
        thread.start()
        threads.append(thread)
        return path

    try:
        yield answer_with
    finally:
        listener.close()
        for thread in threads:
            thread.join(timeout=SERVE_TIMEOUT_S)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"this is not json\n", "answered with something other than a reply"),
        (b"[1, 2]\n", "answered with something other than a reply"),
        (None, "the agent closed the connection"),
    ],
)
def test_a_misbehaving_agent_gives_one_line_and_exit_2(fake_agent, cli, answer, message):
    outcome = cli("members", "--socket", fake_agent(answer))
    assert outcome.code == 2
    assert outcome.out == ""
    assert outcome.err.startswith("gossipnode members: ") and message in outcome.err
    assert len(outcome.err.splitlines()) == 1


def test_an_error_reply_passes_its_exit_code_through(fake_agent, cli):
    path = fake_agent(b'{"ok": false, "error": "no record groups/x", "exit": 1}\n')
    outcome = cli("get", "groups", "x", "--socket", path)
    assert outcome.code == 1
    assert outcome.err == "gossipnode get: no record groups/x\n"


def test_socket_and_config_are_exclusive(cli, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli("members", "--socket", tmp_path / "a", "--config", tmp_path / "b")
    assert exit_info.value.code == 2
