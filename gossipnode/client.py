"""A client for the agent's control socket (see runtime/control.py for the protocol).

Plain blocking sockets: the CLI makes one request and exits, so it needs no event loop.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["SOCKET_ENV", "AgentUnreachable", "ClientError", "ControlClient"]

SOCKET_ENV = "GOSSIPNODE_SOCKET"
# A request waits this long for its reply; `repair` itself gives up after 30 s.
REPLY_TIMEOUT_S = 60.0
# A reply line at most (a `list` of many large records): far above any sane reply.
REPLY_BYTES_MAX = 256 * 1024 * 1024


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
        self._buffer = b""

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
            sock.settimeout(self.timeout_s)
            try:
                sock.connect(str(self.path))
            except OSError as error:
                sock.close()
                raise AgentUnreachable(
                    f"no agent answers on {self.path}: {error.strerror or error}"
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
            raise AgentUnreachable(f"lost the agent on {self.path}: {error}") from None
        if not reply.get("ok"):
            raise ClientError(reply.get("error", "error"), reply.get("exit", 2))
        return reply.get("result")

    def stream(self, verb: str, **arguments: Any) -> Iterator[dict[str, Any]]:
        """Send one request and yield every reply line after the first (for `monitor`)."""
        self.request(verb, **arguments)
        assert self._socket is not None
        self._socket.settimeout(None)
        while True:
            try:
                yield self._read_line()
            except OSError as error:
                raise AgentUnreachable(f"lost the agent on {self.path}: {error}") from None

    def _read_line(self) -> dict[str, Any]:
        assert self._socket is not None
        while b"\n" not in self._buffer:
            data = self._socket.recv(1 << 20)
            if not data:
                raise AgentUnreachable("the agent closed the connection")
            self._buffer += data
            if len(self._buffer) > REPLY_BYTES_MAX:
                raise AgentUnreachable("reply too large")
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise AgentUnreachable(f"{self.path} answered with something other than a reply")
        return reply
