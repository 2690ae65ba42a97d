"""A client for the agent's control socket (see runtime/control.py for the protocol).

Plain blocking sockets: the CLI makes one request and exits, so it needs no event loop.
The reply timeout is the socket's own (SO_RCVTIMEO, SO_SNDTIMEO), not Python's: a Python
socket timeout polls before every send and receive, a system call per call for nothing.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["SOCKET_ENV", "AgentUnreachable", "ClientError", "ControlClient"]

SOCKET_ENV = "GOSSIPNODE_SOCKET"
# A request waits this long for its reply; `repair` itself gives up after 30 s.
REPLY_TIMEOUT_S = 60.0
# A reply line at most (a `list` of many large records): far above any sane reply.
REPLY_BYTES_MAX = 256 * 1024 * 1024
# One receive call takes at most this much: a whole ordinary reply. A larger buffer costs
# more than it saves: Python allocates the whole buffer for every receive (1 MiB took
# 15 us a call here, 64 KiB 3 us), and a large reply just takes more calls.
RECEIVE_BYTES = 65536


class ClientError(Exception):
    """The agent answered with an error. `exit_code`: 1 "no such record", 2 bad input."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class AgentUnreachable(Exception):
    """No agent answers on the socket (exit code 2 for `health`, as consul does)."""


class ControlClient:
    def __init__(self, path: str | os.PathLike[str], timeout_s: float = REPLY_TIMEOUT_S):
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._socket: socket.socket | None = None
        self._buffer = bytearray()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _connect(self) -> socket.socket:
        if self._socket is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                _set_timeout(sock, self.timeout_s)
                sock.connect(str(self.path))
            except OSError as error:
                sock.close()
                raise AgentUnreachable(
                    f"no agent answers on {self.path}: {_reason(error, error.strerror or error)}"
                ) from None
            self._socket = sock
        return self._socket

    def request(self, verb: str, **arguments: Any) -> Any:
        """Send one request; return its result or raise ClientError."""
        sock = self._connect()
        line = json.dumps({"verb": verb, **arguments}).encode() + b"\n"
        try:
            sock.sendall(line)
            reply = self._read_line()
        except OSError as error:
            raise AgentUnreachable(
                f"lost the agent on {self.path}: {_reason(error, error)}") from None
        if not reply.get("ok"):
            raise ClientError(reply.get("error", "error"), reply.get("exit", 2))
        return reply.get("result")

    def stream(self, verb: str, **arguments: Any) -> Iterator[dict[str, Any]]:
        """Send one request and yield every reply line after the first (for `monitor`)."""
        self.request(verb, **arguments)
        assert self._socket is not None
        _set_timeout(self._socket, None)
        while True:
            try:
                yield self._read_line()
            except OSError as error:
                raise AgentUnreachable(
                    f"lost the agent on {self.path}: {_reason(error, error)}") from None

    def _read_line(self) -> dict[str, Any]:
        assert self._socket is not None
        buffer = self._buffer
        searched = 0  # no newline before this offset
        while (newline := buffer.find(b"\n", searched)) < 0:
            searched = len(buffer)
            data = self._socket.recv(RECEIVE_BYTES)
            if not data:
                raise AgentUnreachable("the agent closed the connection")
            buffer += data
            if len(buffer) > REPLY_BYTES_MAX:
                raise AgentUnreachable("reply too large")
        line = buffer[:newline]
        del buffer[: newline + 1]
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise AgentUnreachable(f"{self.path} answered with something other than a reply")
        return reply


def _set_timeout(sock: socket.socket, timeout_s: float | None) -> None:
    """Sends and receives on `sock` fail after `timeout_s` (None: wait for ever)."""
    seconds = 0.0 if timeout_s is None else max(timeout_s, 1e-6)  # 0 would mean never
    whole = int(seconds)
    interval = struct.pack("@ll", whole, int((seconds - whole) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, interval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, interval)


def _reason(error: OSError, otherwise: object) -> str:
    """"timed out" for a timeout (the socket's own fails with EAGAIN), else `otherwise`."""
    if isinstance(error, BlockingIOError | TimeoutError):
        return "timed out"
    return str(otherwise)
