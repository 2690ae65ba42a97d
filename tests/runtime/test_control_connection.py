"""One control connection as the agent serves it (runtime/control.py), over a socket pair:
requests sent ahead of their replies are answered in order and do not starve the agent,
a reply larger than the socket's buffer waits for the client to read it, and a client
that leaves mid-reply ends only its own connection. A control socket that cannot bind is
closed at once, not left to the collector."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import trio

from gossipnode.runtime import control, control_api
from gossipnode.runtime.control_clients import ControlClients

# Every wait of these tests ends within this (they run in milliseconds).
TEST_TIMEOUT_S = 30.0
# Requests sent in one go, ahead of any reply.
PIPELINED = 3000
# Larger than a Unix socket's send and receive buffers together (a few hundred KiB).
BIG_REPLY_CHARS = 4 * 1024 * 1024


def _agent() -> SimpleNamespace:
    """What `ping` reads of an agent."""
    return SimpleNamespace(config=SimpleNamespace(name="solo", listen=("127.0.0.1", 1)),
                           clock=lambda: 5.0, started_at=1.0, listen_address=None)


class _Peer:
    """The client's end: sends bytes, reads reply lines."""

    def __init__(self, sock: socket.socket) -> None:
        self.raw = sock
        self.socket = trio.socket.from_stdlib_socket(sock)
        self.buffer = bytearray()

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[await self.socket.send(view):]

    async def reply(self) -> dict | None:
        while b"\n" not in self.buffer:
            data = await self.socket.recv(65536)
            if not data:
                return None
            self.buffer += data
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        return json.loads(line)


_PEERS: list[_Peer] = []


@pytest.fixture(autouse=True)
def _close_peers() -> Iterator[None]:
    yield
    while _PEERS:
        _PEERS.pop().raw.close()  # after the test's trio run


async def _serve(nursery: trio.Nursery) -> tuple[_Peer, trio.Event]:
    """Serve one connection of a socket pair in `nursery`; the event is set when it ends."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    _PEERS.append(_Peer(theirs))
    client = ControlClients().admit((None, "tester"))
    assert client is not None
    ended = trio.Event()

    async def serve() -> None:
        connection = control._Connection(ours)
        try:
            await control._serve_connection(_agent(), connection, client)
        finally:
            connection.close()
            ended.set()

    nursery.start_soon(serve)
    return _PEERS[-1], ended


@pytest.fixture
def big_verb(monkeypatch) -> None:
    """A verb `big` whose reply is larger than the socket's buffers."""

    async def big(agent, request):
        return "x" * BIG_REPLY_CHARS

    monkeypatch.setitem(control_api._VERBS, "big", big)


async def test_requests_sent_ahead_are_answered_in_order_and_let_other_tasks_run():
    steps = 0

    async def other_task() -> None:
        nonlocal steps
        while True:
            steps += 1
            await trio.lowlevel.checkpoint()

    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other_task)
            peer, _ended = await _serve(nursery)
            lines = [b'{"verb": "ping"}\n', b"not json\n", b"\n", b'{"verb": "nope"}\n']
            await peer.send(b"".join(lines[i % 4] for i in range(PIPELINED)))
            replies = [await peer.reply() for _ in range(PIPELINED * 3 // 4)]
            nursery.cancel_scope.cancel()
    assert [r["ok"] for r in replies[:3]] == [True, False, False]
    assert replies[0]["result"]["name"] == "solo"
    assert replies[1]["error"].startswith("request is not JSON")
    assert replies[2]["error"].startswith("unknown verb 'nope'")
    assert replies == replies[:3] * (PIPELINED // 4)
    # Each request answered without a wait for more input yields once: the other task
    # ran between them, not only when the connection had read everything.
    assert steps >= PIPELINED // 2


@pytest.mark.usefixtures("big_verb")
async def test_a_reply_larger_than_the_socket_buffer_waits_for_the_reader():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            peer, ended = await _serve(nursery)
            await peer.send(b'{"verb": "big"}\n{"verb": "ping"}\n')
            await trio.sleep(0.05)  # the agent fills the buffers and waits to write
            assert not ended.is_set()
            first, second = await peer.reply(), await peer.reply()
            nursery.cancel_scope.cancel()
    assert first == {"ok": True, "result": "x" * BIG_REPLY_CHARS}
    assert second["ok"] and second["result"]["name"] == "solo"


@pytest.mark.usefixtures("big_verb")
async def test_a_client_that_leaves_mid_reply_ends_only_its_connection():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            leaving, left = await _serve(nursery)
            staying, _ = await _serve(nursery)
            await leaving.send(b'{"verb": "big"}\n')
            await trio.sleep(0.05)
            leaving.socket.close()
            await left.wait()  # the send failed: the connection ended, quietly
            await staying.send(b'{"verb": "ping"}\n')
            reply = await staying.reply()
            nursery.cancel_scope.cancel()
    assert reply["ok"] and reply["result"]["name"] == "solo"


@pytest.mark.parametrize("pieces", [1, 7, 200])
async def test_a_request_arriving_in_pieces_is_one_request(pieces):
    request = json.dumps({"verb": "ping", "pad": "y" * 100_000}).encode() + b"\n"
    size = -(-len(request) // pieces)
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            peer, _ended = await _serve(nursery)
            for start in range(0, len(request), size):
                await peer.send(request[start:start + size])
                await trio.sleep(0.001)  # lets the agent read each piece apart
            reply = await peer.reply()
            nursery.cancel_scope.cancel()
    assert reply["ok"] and reply["result"]["name"] == "solo"


async def test_a_control_socket_that_cannot_bind_is_closed_and_the_error_raised(
        tmp_path, monkeypatch) -> None:
    made: list[trio.socket.SocketType] = []
    real_socket = trio.socket.socket

    def recording_socket(*args: object) -> trio.socket.SocketType:
        sock = real_socket(*args)
        made.append(sock)
        return sock

    monkeypatch.setattr(control.trio.socket, "socket", recording_socket)
    path = tmp_path / "no-such-directory" / "control.sock"
    agent = SimpleNamespace(config=SimpleNamespace(control_socket_path=path))
    with trio.fail_after(TEST_TIMEOUT_S), pytest.raises(FileNotFoundError):
        await control.serve_control(agent)
    assert len(made) == 1
    assert made[0].fileno() == -1  # closed, not left to the collector
