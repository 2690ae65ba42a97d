"""The HKP listener: the HTTP Keyserver Protocol every OpenPGP client speaks
(draft-gallagher-openpgp-hkp; `gpg --keyserver hkp://HOST:PORT`). Off unless `hkp_listen`.

Rules:
1. HTTP/1.1 parsing is h11's state machine (sans-IO, like the rest of the node); this module
   only moves bytes. One request per connection: every response says `Connection: close`.
2. GET /pks/lookup with `op=get` (an armored keyring), `op=index` and `op=vindex` (a key
   list; `options=mr` gives the machine-readable form gpg parses). `search` is a key
   reference (fingerprint in any spelling or a 16-digit key ID, `0x` prefix as gpg sends)
   or text found in an e-mail address or user ID.
3. POST /pks/add (`keytext=` form field, what `gpg --send-keys` sends) only with
   `hkp_accept_uploads = true`; keys merge exactly as `keys import` merges them. Any secret
   key material refuses the whole upload: nothing of it is stored.
4. Limits, like the peer listener's: at most `wire.unauthenticated_connections_max`
   connections at once (more get 503 and are closed); a request must arrive whole within
   `wire.handshake_timeout_s` (else 408); the request head is capped at `HEAD_BYTES_MAX`
   (431) and the body at `wire.frame_bytes_max` (413). Bad requests get a 4xx and a closed
   connection; nothing a client sends raises out of `serve_hkp`. After an error response
   the rest of the request is drained briefly before closing, so the client reads the
   response rather than a TCP reset.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import h11
import trio

from ..openpgp import KeyParseError, contains_secret_key_material, packets, split_keys
from ..openpgp.lookup import armor_keyring, parse_key_ref
from .keys_api import IMPORT_BATCH_KEYS_MAX, KeyLookupError, find_keys, import_keys

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["serve_hkp"]

logger = logging.getLogger("gossipnode.hkp")

# Request line plus headers: gpg sends a few hundred bytes; 16 KiB leaves room for long
# searches while a client cannot make us buffer more than this before the body.
HEAD_BYTES_MAX = 16 * 1024
# A response to a slow reader (a big keyring) gets this long before the connection is cut.
RESPONSE_TIMEOUT_S = 30.0
READ_BYTES = 65536
# After an error response the rest of the request is read and dropped (up to this much,
# for this long) before closing: closing with unread input would send a TCP reset, and
# the client could lose the response.
DRAIN_BYTES_MAX = 1024 * 1024
DRAIN_S = 1.0
# Keys listed or returned per lookup: a search that matches more is cut (gpg lists them).
RESULTS_MAX = 100
# Form fields read from a query or upload: HKP uses four at most.
FORM_FIELDS_MAX = 16
HKP_OPS = ("get", "index", "vindex")


class _HttpError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


async def serve_hkp(agent: Agent, *, task_status: trio.TaskStatus[tuple[str, int]]
                    = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on `agent.config.hkp_listen` until cancelled; reports the bound address.
    A bind failure raises OSError (the agent reports it as a start-up failure naming
    `hkp_listen`, as it does for `metrics_listen`)."""
    assert agent.config.hkp_listen is not None
    host, port = agent.config.hkp_listen
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[:2]
    active = [0]
    logger.info("HKP listening on %s:%d (uploads %s)", bound[0], bound[1],
                "on" if agent.config.hkp_accept_uploads else "off")
    task_status.started((bound[0], bound[1]))

    async def connection(stream: trio.SocketStream) -> None:
        try:
            if active[0] >= agent.config.wire.unauthenticated_connections_max:
                await _send_error(h11.Connection(h11.SERVER), stream, _HttpError(
                    503, "too many connections; try again later"))
                return
            active[0] += 1
            try:
                await _serve_one(agent, stream)
            finally:
                active[0] -= 1
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away; nothing to answer
        finally:
            await trio.aclose_forcefully(stream)

    await trio.serve_listeners(connection, listeners)


async def _serve_one(agent: Agent, stream: trio.SocketStream) -> None:
    wire = agent.config.wire
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_BYTES_MAX)
    try:
        with trio.fail_after(wire.handshake_timeout_s):
            request, body = await _read_request(conn, stream, wire.frame_bytes_max)
        status, content_type, payload = _answer(agent, request, body)
    except trio.TooSlowError:
        await _send_error(conn, stream, _HttpError(408, "request not received in time"))
        return
    except h11.RemoteProtocolError as error:
        await _send_error(conn, stream, _HttpError(error.error_status_hint,
                                                   f"bad request: {error}"))
        return
    except _HttpError as error:
        await _send_error(conn, stream, error)
        return
    except Exception:  # a bug here must cost one request, never the listener
        logger.exception("HKP request failed")
        await _send_error(conn, stream, _HttpError(500, "internal error"))
        return
    await _send(conn, stream, status, content_type, payload)


async def _read_request(conn: h11.Connection, stream: trio.SocketStream,
                        body_bytes_max: int) -> tuple[h11.Request, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(READ_BYTES))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > body_bytes_max:
                raise _HttpError(413, f"request body over {body_bytes_max} bytes")
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            raise _HttpError(400, "connection closed before the request ended")


def _answer(agent: Agent, request: h11.Request, body: bytes) -> tuple[int, str, bytes]:
    target = request.target.decode("ascii", "replace")
    parts = urlsplit(target)
    if not target.startswith("/") or parts.fragment:
        raise _HttpError(400, "malformed request target")
    if parts.path == "/pks/lookup":
        if request.method != b"GET":
            raise _HttpError(405, "use GET for /pks/lookup")
        return _lookup(agent, _form(parts.query))
    if parts.path == "/pks/add":
        if request.method != b"POST":
            raise _HttpError(405, "use POST for /pks/add")
        if not agent.config.hkp_accept_uploads:
            raise _HttpError(403, "this keyserver does not accept uploads")
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise _HttpError(400, "the upload must be a urlencoded form") from None
        return _add(agent, _form(text))
    raise _HttpError(404, f"no such path {parts.path[:100]!r}")


def _form(query: str) -> dict[str, str]:
    try:
        fields = parse_qs(query, max_num_fields=FORM_FIELDS_MAX, strict_parsing=False,
                          errors="strict")
    except ValueError as error:
        raise _HttpError(400, f"bad form: {error}") from None
    return {name: values[0] for name, values in fields.items()}


def _lookup(agent: Agent, form: dict[str, str]) -> tuple[int, str, bytes]:
    op, search = form.get("op"), form.get("search", "").strip()
    if op not in HKP_OPS:
        raise _HttpError(400, f"op must be one of {', '.join(HKP_OPS)}")
    if not search:
        raise _HttpError(400, "a search is needed")
    text = search if parse_key_ref(search) is not None else search.strip("=<>")
    try:
        found = find_keys(agent.store, text, RESULTS_MAX)
    except KeyLookupError as error:
        raise _HttpError(404, str(error)) from None
    if not found:
        raise _HttpError(404, "no keys found")
    if op == "get":
        certs = [value["cert"] for _, value in found if isinstance(value.get("cert"), bytes)]
        return 200, "application/pgp-keys", armor_keyring(certs)
    machine = "mr" in form.get("options", "").split(",")
    return 200, "text/plain", _index(found, machine).encode("utf-8")


def _index(found: list[tuple[str, dict[str, Any]]], machine: bool) -> str:
    now = int(time.time())
    lines = [f"info:1:{len(found)}"] if machine else []
    for fingerprint, value in found:
        created, expires = value.get("created_unix_s"), value.get("expires_unix_s")
        flags = ("r" if value.get("revoked") else "") + (
            "e" if isinstance(expires, int) and expires <= now else "")
        if machine:
            lines.append(f"pub:{fingerprint.upper()}:{_algorithm(value)}::{created or ''}:"
                         f"{expires or ''}:{flags}")
            lines.extend(f"uid:{quote(uid, safe=' <>@()+,.-_')}:::" for uid in
                         value.get("user_ids") or [])
        else:
            lines.append(f"pub {fingerprint.upper()}{' (revoked)' if 'r' in flags else ''}")
            lines.extend(f"uid {uid}" for uid in value.get("user_ids") or [])
    return "\n".join(lines) + "\n"


def _algorithm(value: dict[str, Any]) -> str:
    """The primary key's public-key algorithm id (RFC 9580 9.1), or "" if unreadable."""
    cert = value.get("cert")
    pile = packets.split_packets(cert) if isinstance(cert, bytes) else None
    body = pile[0][1] if pile else b""
    return str(body[5]) if len(body) > 5 and body[0] in (4, 5, 6) else ""


def _add(agent: Agent, form: dict[str, str]) -> tuple[int, str, bytes]:
    keytext = form.get("keytext")
    if not keytext:
        raise _HttpError(400, "the keytext field is missing")
    data = keytext.encode("utf-8")
    if contains_secret_key_material(data):
        raise _HttpError(422, "secret key material is not accepted; nothing was stored")
    try:
        keys = split_keys(data)
    except KeyParseError as error:
        raise _HttpError(400, f"not a key: {error}") from None
    rows = []
    for first in range(0, len(keys), IMPORT_BATCH_KEYS_MAX):
        batch = keys[first:first + IMPORT_BATCH_KEYS_MAX]
        rows.extend(import_keys(agent, [{"cert": key.public_cert} for key in batch]))
    counts = Counter(row["status"] for row in rows)
    logger.info("HKP upload: %d keys, %d new, %d updated, %d unchanged, %d refused",
                len(rows), counts["new"], counts["updated"], counts["unchanged"],
                counts["error"])
    if counts["error"] == len(rows):
        raise _HttpError(422, rows[0]["error"] or "no key was accepted")
    text = "".join(f"{row['fingerprint']} {row['status']}\n" for row in rows)
    return 200, "text/plain", text.encode("utf-8")


async def _send(conn: h11.Connection, stream: trio.SocketStream, status: int,
                content_type: str, payload: bytes) -> None:
    headers = [("content-type", content_type), ("content-length", str(len(payload))),
               ("connection", "close"), ("server", "gossipnode")]
    data = conn.send(h11.Response(status_code=status, headers=headers))
    data += conn.send(h11.Data(data=payload)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    with trio.move_on_after(RESPONSE_TIMEOUT_S):
        await stream.send_all(data)


async def _send_error(conn: h11.Connection, stream: trio.SocketStream,
                      error: _HttpError) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    await _send(conn, stream, error.status, "text/plain", f"{error.text}\n".encode())
    with trio.move_on_after(DRAIN_S):
        await stream.send_eof()
        drained = 0
        while drained < DRAIN_BYTES_MAX:
            data = await stream.receive_some(READ_BYTES)
            if not data:
                break
            drained += len(data)
