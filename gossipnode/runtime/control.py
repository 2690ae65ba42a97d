"""The local control socket: newline-delimited JSON requests and replies on a Unix socket.

Rules:
1. The socket is created with mode 0600 (umask while binding, then chmod), so only the
   agent's user may talk to it. A stale socket file is replaced only when no agent answers
   on it; a live agent's socket is never stolen.
2. One request per line: {"verb": NAME, ...arguments}. One reply per line:
   {"ok": true, "result": ...} or {"ok": false, "error": ONE LINE, "exit": CODE}.
3. A bad request (not JSON, not an object, unknown verb, bad arguments) gets an error
   reply and the connection stays usable; a line over `REQUEST_BYTES_MAX` gets an error
   reply and closes that connection only. Nothing a client sends can crash the agent.
4. `monitor` turns the connection into a stream of {"log": LINE} replies until it closes.
5. Clients are bounded per local user (the socket's peer credentials, SO_PEERCRED):
   `CLIENTS_PER_USER_MAX` each and `CLIENTS_MAX` in all. A client over either bound is let
   in by closing the oldest idle connection (of its own user first, else of the user with
   the most), so that idle clients can never lock the operator out. Only when every
   connection is mid-request is the newcomer told to try again. The user is also the
   name every administrative action is logged with (control_api's audit).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import socket as stdlib_socket
import traceback
from typing import TYPE_CHECKING, Any

import trio

from .control_api import ControlError, handle
from .control_clients import CLIENTS_MAX, CLIENTS_PER_USER_MAX, Client, ControlClients, peer_user

if TYPE_CHECKING:
    from .agent import Agent
    from .logs import LogTail

__all__ = ["CLIENTS_MAX", "CLIENTS_PER_USER_MAX", "REQUEST_BYTES_MAX", "serve_control"]

logger = logging.getLogger("gossipnode.control")

# One request line at most: a record of 1 MiB becomes about 1.4 MiB of JSON with base64.
REQUEST_BYTES_MAX = 4 * 1024 * 1024
# How often `monitor` looks for new log lines.
MONITOR_POLL_S = 0.2
READ_BYTES = 65536


async def serve_control(agent: Agent, *,
                        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    path = agent.config.control_socket_path
    await _remove_stale_socket(path)
    sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)
        try:
            await sock.bind(str(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(CLIENTS_MAX)
    except BaseException:  # failed or cancelled before the listener owns it: close it here
        sock.close()
        raise
    listener = trio.SocketListener(sock)
    clients = ControlClients()
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            async with listener:
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(_serve_client, agent, stream, clients)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def _remove_stale_socket(path: os.PathLike[str]) -> None:
    if not await trio.Path(path).exists():
        return
    probe = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        await probe.connect(os.fspath(path))
    except OSError as error:
        if error.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        os.unlink(path)  # nobody answers: a socket left by an agent that died
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path}: another agent is answering on this socket")


async def _serve_client(agent: Agent, stream: trio.SocketStream,
                        clients: ControlClients) -> None:
    # The connection is served on the plain socket (`_Connection`); the stream gives it up.
    connection = _Connection(stdlib_socket.socket(fileno=stream.socket.detach()))
    try:
        client = clients.admit(peer_user(connection.socket))
        if client is None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await connection.send(_encode(_error(
                    f"too many busy control clients ({CLIENTS_MAX}); "
                    "try again when one has finished")))
            return
        try:
            with client.scope:
                await _serve_connection(agent, connection, client)
        finally:
            clients.remove(client)
    finally:
        connection.close()


class _Connection:
    """A client's socket, driven by trio's readiness waits on the plain socket.

    A request costs one checkpoint, one receive and one send, and a readiness wait only
    when its request has not arrived by the time the checkpoint returns: with many
    clients it usually has (the other tasks ran meanwhile). trio's SocketStream adds a
    second checkpoint per request and two conflict detectors. Replies never wait unless
    the client stops reading (then `send` waits until it may write)."""

    def __init__(self, sock: stdlib_socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock

    async def receive(self) -> bytes:
        """Up to `READ_BYTES`, after a checkpoint (so that a client sending without pause
        cannot starve the agent) and, if none have arrived by then, a wait for them; b""
        at the client's end of file."""
        await trio.lowlevel.checkpoint()
        while True:
            try:
                return self.socket.recv(READ_BYTES)
            except BlockingIOError:
                pass
            except OSError as error:
                raise trio.BrokenResourceError(str(error)) from None
            await trio.lowlevel.wait_readable(self.socket)

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while True:
            try:
                sent = self.socket.send(view)
            except BlockingIOError:
                sent = 0
            except OSError as error:
                raise trio.BrokenResourceError(str(error)) from None
            if sent == len(view):
                return
            view = view[sent:]
            await trio.lowlevel.wait_writable(self.socket)

    def close(self) -> None:
        trio.lowlevel.notify_closing(self.socket)  # wakes any task still waiting on it
        self.socket.close()


async def _serve_connection(agent: Agent, connection: _Connection, client: Client) -> None:
    buffer = bytearray()
    searched = 0  # the buffer holds no newline before this offset
    waited = True  # since the last checkpoint
    try:
        while True:
            newline = buffer.find(b"\n", searched)
            if newline < 0:
                searched = len(buffer)
                if searched > REQUEST_BYTES_MAX:
                    await connection.send(_encode(_error(
                        f"request over {REQUEST_BYTES_MAX} bytes")))
                    return
                client.idle = not buffer  # a half-sent request is not idle
                data = await connection.receive()
                if not data:
                    return
                client.idle = False
                buffer += data
                waited = True
                continue
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            searched = 0
            if not line.strip():
                continue
            if not waited:
                # Requests sent ahead of their replies are answered one after another
                # without a wait: a checkpoint each keeps a stream of them from starving
                # the agent.
                await trio.lowlevel.checkpoint()
            waited = False
            request = _parse(line)
            if isinstance(request, dict) and request.get("verb") == "monitor":
                client.idle = True  # a monitor waits; it may be closed for a newcomer
                await _monitor(agent, connection)
                return
            await connection.send(_encode(await _answer(agent, request, client.user)))
            client.last_active = trio.current_time()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as error:
        return ControlError(f"request is not JSON: {error}")


async def _answer(agent: Agent, request: Any, user: str) -> dict[str, Any]:
    if isinstance(request, ControlError):
        return _error(str(request))
    try:
        result = await handle(agent, request, user=user)
    except ControlError as error:
        return _error(str(error), error.exit_code)
    except Exception as error:  # a bug must not take the agent down; report it
        # Neither the request nor the error's text is logged or returned: either may hold
        # a record value, and a value may be a private key. The verb, the argument names,
        # the error's type and where it was raised are enough to find the bug.
        logger.error("control request %s failed: %s\n%s", _describe(request),
                     type(error).__name__, "".join(traceback.format_tb(error.__traceback__)))
        return _error(f"internal error: {type(error).__name__} (see the agent's log)")
    return {"ok": True, "result": result}


_IDENTIFIER = re.compile(r"[a-z_]{1,32}")


def _describe(request: Any) -> str:
    """`verb(argument names)`: a request as it may be logged, without any value."""
    if not isinstance(request, dict):
        return f"of type {type(request).__name__}"
    def plain(name: Any) -> str:  # an identifier, or "?": a name may be anything too
        return name if isinstance(name, str) and _IDENTIFIER.fullmatch(name) else "?"

    names = ", ".join(sorted(plain(k) for k in request if k != "verb"))
    return f"{plain(request.get('verb'))}({names})"


def _error(message: str, exit_code: int = 2) -> dict[str, Any]:
    return {"ok": False, "error": message.splitlines()[0] if message else "error",
            "exit": exit_code}


# One encoder for every reply (json.dumps would build one per call for sort_keys).
_REPLY_ENCODER = json.JSONEncoder(sort_keys=True)


def _encode(reply: dict[str, Any]) -> bytes:
    """A reply line."""
    return (_REPLY_ENCODER.encode(reply) + "\n").encode()


async def _monitor(agent: Agent, connection: _Connection) -> None:
    """Stream new log lines until the client closes its end (or stops reading)."""
    tail = agent.log_tail
    if tail is None:
        await connection.send(_encode(_error("this agent keeps no log tail")))
        return
    sequence = tail.sequence
    await connection.send(_encode({"ok": True, "result": "streaming log lines"}))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_follow_log, tail, sequence, connection, nursery.cancel_scope)
        # A monitor client sends nothing more; its EOF is how we learn it left, so that a
        # quiet log does not keep a closed monitor's slot forever.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while await connection.receive():
                pass
        nursery.cancel_scope.cancel()


async def _follow_log(tail: LogTail, sequence: int, connection: _Connection,
                      done: trio.CancelScope) -> None:
    try:
        while True:
            for number, line in tail.since(sequence):
                await connection.send(_encode({"log": line}))
                sequence = number
            await trio.sleep(MONITOR_POLL_S)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        done.cancel()
