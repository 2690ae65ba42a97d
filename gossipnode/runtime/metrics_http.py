"""The optional HTTP listener for Prometheus: `metrics_listen = "HOST:PORT"` serves
GET /metrics (the same text as `gossipnode metrics`). HTTP parsing is h11's, a small,
well-kept sans-IO HTTP/1.1 library: a hand-rolled parser facing the network is a liability.

Rules:
1. GET or HEAD /metrics answers 200 with the text format (version 0.0.4); any other path
   is 404, any other method 405. Keep-alive is honoured (Prometheus reuses connections).
2. Bounded: at most `METRICS_CLIENTS_MAX` connections at once (more are closed at once),
   request heads of at most `REQUEST_HEAD_BYTES_MAX`, and a connection silent for
   `IDLE_TIMEOUT_S` is closed. A malformed request gets a 400 and the connection closes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import h11
import trio

from ..config import format_address
from .metrics import render_metrics

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["serve_metrics"]

logger = logging.getLogger("gossipnode.metrics")

# Scrapers at once: one Prometheus (or two, in an HA pair) and an operator's curl.
METRICS_CLIENTS_MAX = 8
# A scrape request is a few hundred bytes of headers.
REQUEST_HEAD_BYTES_MAX = 16 * 1024
# Prometheus scrapes every 15-60 s over one kept-alive connection; a minute of silence
# ends it, so dead scrapers do not hold slots.
IDLE_TIMEOUT_S = 90.0
READ_BYTES = 16 * 1024
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


async def serve_metrics(agent: Agent, address: tuple[str, int], *,
                        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
                        ) -> None:
    host, port = address
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    agent.metrics_address = (bound[0], bound[1])
    limiter = trio.CapacityLimiter(METRICS_CLIENTS_MAX)
    logger.info("serving /metrics on http://%s/metrics", format_address(agent.metrics_address))
    task_status.started(agent.metrics_address)

    async def handler(stream: trio.SocketStream) -> None:
        try:
            limiter.acquire_on_behalf_of_nowait(stream)
        except trio.WouldBlock:
            await stream.aclose()
            return
        try:
            await _serve(agent, stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            limiter.release_on_behalf_of(stream)
            await stream.aclose()

    await trio.serve_listeners(handler, listeners)


async def _serve(agent: Agent, stream: trio.SocketStream) -> None:
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=REQUEST_HEAD_BYTES_MAX)
    while True:
        try:
            event = await _next_event(connection, stream)
        except h11.RemoteProtocolError:
            if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await _respond(connection, stream, 400, b"bad request\n")
            return
        if event is None or isinstance(event, h11.ConnectionClosed):
            return
        if not isinstance(event, h11.Request):
            continue
        if event.method not in (b"GET", b"HEAD"):
            await _respond(connection, stream, 405, b"method not allowed\n")
        elif event.target.split(b"?")[0] != b"/metrics":
            await _respond(connection, stream, 404, b"not found: try /metrics\n")
        else:
            body = render_metrics(agent).encode()
            await _respond(connection, stream, 200, body, head=event.method == b"HEAD")
        # Drain the request (a GET has no body) and start over, or stop if either side
        # asked to close.
        while True:
            try:
                event = await _next_event(connection, stream)
            except h11.RemoteProtocolError:
                return
            if event is None or isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        if connection.our_state is h11.MUST_CLOSE or connection.their_state is not h11.DONE:
            return
        try:
            connection.start_next_cycle()
        except h11.LocalProtocolError:
            return


async def _next_event(connection: h11.Connection, stream: trio.SocketStream) -> object | None:
    """The next h11 event, reading as needed; None when the client stayed silent too long."""
    while True:
        event = connection.next_event()
        if event is not h11.NEED_DATA:
            return event
        with trio.move_on_after(IDLE_TIMEOUT_S):
            data = await stream.receive_some(READ_BYTES)
            connection.receive_data(data)
            continue
        return None


async def _respond(connection: h11.Connection, stream: trio.SocketStream, status: int,
                   body: bytes, *, head: bool = False) -> None:
    headers = [(b"content-type", CONTENT_TYPE if status == 200 else b"text/plain"),
               (b"content-length", str(len(body)).encode())]
    data = connection.send(h11.Response(status_code=status, headers=headers))
    if not head:
        data += connection.send(h11.Data(data=body))
    data += connection.send(h11.EndOfMessage())
    await stream.send_all(data)
