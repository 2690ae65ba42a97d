"""The verbs of the control socket: one function per verb, taking the request's arguments and
returning a JSON-ready result (see control.py for the protocol).

Record values travel as JSON objects; bytes inside them as {"$bytes": BASE64}.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from .. import __version__
from ..config import RESERVED_TAGS, format_address
from ..core.catalog import dataset as lookup_dataset
from ..core.errors import LocalProtocolError
from ..core.events import SyncCompleted
from ..core.placement import POLICY_DATASET, PRIVATE_KEYS_POLICY_PREFIX, WEP_POLICY_KEY
from ..core.records import Record
from ..identity import format_node_id, parse_node_id, short_id
from ..wire.cbor import CborError, decode_value, encode_value
from .admin_api import ADMIN_VERBS
from .audit import AUDITED_VERBS, audit, outcome
from .control_errors import ControlError
from .metrics import render_metrics
from .status import health, info, members, status
from .trust import trust_verbs

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["ControlError", "from_json", "handle", "to_json"]

# `list` returns at most this many records unless asked for fewer.
LIST_LIMIT_DEFAULT = 1000
LIST_LIMIT_MAX = 100_000
# `repair` waits at most this long for the round's sessions to finish.
REPAIR_WAIT_S = 30.0


def to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"} and isinstance(value["$bytes"], str):
            try:
                return base64.b64decode(value["$bytes"], validate=True)
            except ValueError:
                raise ControlError("a $bytes value must be base64") from None
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def _record_json(record: Record, decoded: Any = None) -> dict[str, Any]:
    """`decoded`: the record's value as a map, when the caller holds it already."""
    if decoded is None and record.value is not None:
        decoded = decode_value(record.value)
    return {
        "dataset": record.dataset,
        "key": record.key,
        "value": None if record.value is None else to_json(decoded),
        "version": {
            "wall_ms": record.version.wall_ms,
            "counter": record.version.counter,
            "origin": format_node_id(record.version.origin),
        },
    }


def _text(request: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = request.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ControlError(f"argument {name!r} must be a non-empty string")
    return value


def _dataset(request: dict[str, Any]) -> str:
    name = _text(request, "dataset")
    try:
        lookup_dataset(name)
    except LocalProtocolError as error:
        raise ControlError(str(error)) from None
    return name


def _write(agent: Agent, call: Callable[[float], Record]) -> Record:
    try:
        return agent.input(call)
    except LocalProtocolError as error:
        raise ControlError(str(error)) from None


async def _write_batched(agent: Agent, dataset: str, key: str, value: bytes | None) -> Record:
    """A client write, made durable with whatever other writes arrived at the same time."""
    try:
        return await agent.write(dataset, key, value)
    except LocalProtocolError as error:
        raise ControlError(str(error)) from None


# --- data verbs ---------------------------------------------------------------------------------


async def _put(agent: Agent, request: dict[str, Any]) -> Any:
    dataset, key = _dataset(request), _text(request, "key")
    value = from_json(request.get("value"))
    if not isinstance(value, dict):
        raise ControlError("the value must be a JSON object (a map)")
    try:
        encoded = encode_value(value)
    except CborError as error:
        raise ControlError(str(error)) from None
    record = await _write_batched(agent, dataset, key, encoded)
    # Stored as given (not merged with what was there): the value is the request's own.
    return _record_json(record, value if record.value == encoded else None)


async def _delete(agent: Agent, request: dict[str, Any]) -> Any:
    dataset = _dataset(request)
    key = _record_key(agent, dataset, _text(request, "key"))
    current = agent.store.get(dataset, key)
    if current is None or current.value is None:  # absent, or already a tombstone
        raise ControlError(f"no record {dataset}/{key}", exit_code=1)
    return _record_json(await _write_batched(agent, dataset, key, None))


async def _get(agent: Agent, request: dict[str, Any]) -> Any:
    dataset = _dataset(request)
    key = _record_key(agent, dataset, _text(request, "key"))
    record = agent.store.get(dataset, key)
    if record is None or record.value is None:
        raise ControlError(f"no record {dataset}/{key}", exit_code=1)
    return _record_json(record)


async def _list(agent: Agent, request: dict[str, Any]) -> Any:
    """Records in key order after `after` (exclusive). With `page: true` the result is
    {"records": [...], "next": KEY or null}: `next` is the `after` of the next page, null
    when there is no more; without it, the bare list (older clients)."""
    dataset = _dataset(request)
    prefix = request.get("prefix") or ""
    after = request.get("after")
    limit = request.get("limit", LIST_LIMIT_DEFAULT)
    if not isinstance(prefix, str):
        raise ControlError("argument 'prefix' must be a string")
    if after is not None and not isinstance(after, str):
        raise ControlError("argument 'after' must be a string (a key)")
    if type(limit) is not int or not 1 <= limit <= LIST_LIMIT_MAX:
        raise ControlError(f"argument 'limit' must be an integer from 1 to {LIST_LIMIT_MAX}")
    found = agent.store.scan(dataset, prefix=prefix, after=after, limit=limit + 1)
    records = [_record_json(r) for r in found[:limit]]
    if not request.get("page"):
        return records
    return {"records": records, "next": records[-1]["key"] if len(found) > limit else None}


# --- policy and tags ----------------------------------------------------------------------------


def _member_id(agent: Agent, name_or_id: str) -> bytes:
    for member in agent.core.members():
        if member.name == name_or_id:
            return member.node_id
    try:
        return parse_node_id(name_or_id)
    except ValueError:
        raise ControlError(f"no member named {name_or_id!r}") from None


def _put_policy(agent: Agent, key: str, value: dict[str, Any]) -> Record:
    encoded = encode_value(value)
    return _write(agent, lambda now: agent.core.put(POLICY_DATASET, key, encoded, now))


async def _policy_private_keys(agent: Agent, request: dict[str, Any]) -> Any:
    node_id = _member_id(agent, _text(request, "node"))
    allow = request.get("allow")
    if not isinstance(allow, bool):
        raise ControlError("argument 'allow' must be true or false")
    _put_policy(agent, PRIVATE_KEYS_POLICY_PREFIX + node_id.hex(), {"allow": allow})
    return await _policy_show(agent, {})


async def _policy_wep(agent: Agent, request: dict[str, Any]) -> Any:
    current = agent.core.policy
    value: dict[str, Any] = {
        "replication": current.wep_replication,
        "replicas": current.wep_replicas,
        "eligible": sorted(current.wep_eligible or ()),
    }
    if "replication" in request:
        if not isinstance(request["replication"], bool):
            raise ControlError("argument 'replication' must be true or false")
        value["replication"] = request["replication"]
    if "replicas" in request:
        replicas = request["replicas"]
        if type(replicas) is not int or not 1 <= replicas <= 16:
            raise ControlError("argument 'replicas' must be an integer from 1 to 16")
        value["replicas"] = replicas
    if "eligible" in request:
        names = request["eligible"]
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ControlError("argument 'eligible' must be a list of member names")
        value["eligible"] = sorted(names)
    _put_policy(agent, WEP_POLICY_KEY, value)
    return await _policy_show(agent, {})


async def _policy_show(agent: Agent, request: dict[str, Any]) -> Any:
    policy = agent.core.policy
    names = {m.node_id: m.name for m in agent.core.members()}
    return {
        "enforced": policy.enforced,
        "private_keys_denied": sorted(
            names.get(n, format_node_id(n)) for n in policy.private_keys_denied
        ),
        "wep": {
            "replication": policy.wep_replication,
            "replicas": policy.wep_replicas,
            "eligible": sorted(policy.wep_eligible) if policy.wep_eligible else None,
        },
    }


async def _tags_set(agent: Agent, request: dict[str, Any]) -> Any:
    tags = request.get("tags")
    if not isinstance(tags, dict) or not tags or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in tags.items()
    ):
        raise ControlError("argument 'tags' must be a map of strings to strings")
    reserved = sorted(set(tags) & RESERVED_TAGS)
    if reserved:
        raise ControlError(f"tag {reserved[0]!r} is set by the agent itself, not by an operator")
    for flag in ("wep", "private_keys"):
        if flag in tags and tags[flag] not in ("true", "false"):
            raise ControlError(f"tag {flag!r} must be true or false")
    try:
        agent.input(lambda now: agent.core.set_tags(tags, now))
    except LocalProtocolError as error:
        raise ControlError(str(error)) from None
    return dict(agent.core.tags)


# --- operations ---------------------------------------------------------------------------------


async def _repair(agent: Agent, request: dict[str, Any]) -> Any:
    peer_name = _text(request, "peer", required=False)
    dataset = _dataset(request) if request.get("dataset") is not None else None
    peer = _member_id(agent, peer_name) if peer_name else None
    # Sessions report their end with SyncCompleted; collect them from the start, since
    # which sessions are ours is known only once the round started.
    ended: list[SyncCompleted] = []
    changed = trio.Event()

    def on_sync(event: SyncCompleted) -> None:
        ended.append(event)
        changed.set()

    agent.sync_listeners.append(on_sync)
    try:
        try:
            started = agent.input(lambda now: agent.core.repair(now, peer=peer, dataset=dataset))
        except LocalProtocolError as error:
            raise ControlError(str(error)) from None
        if started is None:
            raise ControlError("no live peer to repair with", exit_code=1)
        peer_id, session_ids = started
        sessions = len(session_ids)

        def ours() -> list[SyncCompleted]:
            return [e for e in ended if e.peer == peer_id and e.initiated
                    and e.session in session_ids]

        with trio.move_on_after(REPAIR_WAIT_S):
            while len(ours()) < sessions:
                changed = trio.Event()
                await changed.wait()
    finally:
        agent.sync_listeners.remove(on_sync)
    done = ours()
    names = {m.node_id: m.name for m in agent.core.members()}
    return {
        "peer": short_id(peer_id),
        "peer_name": names.get(peer_id, "?"),
        "sessions": sessions,
        # Finished: every session ended, and none failed (an abandoned session repaired
        # only part of its dataset, so the repair is not done).
        "finished": len(done) >= sessions and not any(e.failure for e in done),
        "failures": sorted({f"{e.dataset}: {e.failure}" for e in done if e.failure}),
        "records_received": sum(e.received for e in done),
        "records_sent": sum(e.sent for e in done),
    }


async def _owners(agent: Agent, request: dict[str, Any]) -> Any:
    mailbox = _text(request, "mailbox")
    owners = agent.core.owners(mailbox)
    names = {m.node_id: m.name for m in agent.core.members()}
    return {
        "mailbox": mailbox,
        "replication": owners is not None,
        "owners": [
            {"name": names.get(node_id, "?"), "id": format_node_id(node_id),
             "short_id": short_id(node_id)}
            for node_id in owners or ()
        ],
    }


async def _reseed(agent: Agent, request: dict[str, Any]) -> Any:
    force = request.get("force", False)
    if not isinstance(force, bool):
        raise ControlError("argument 'force' must be true or false")
    holders = [m.name for m in agent.core.members()
               if m.node_id != agent.core.node_id and m.state == "alive"]
    if not holders and not force:
        raise ControlError(
            "no live peer holds the data to pull afresh: reseeding now would discard the only "
            "copy; wait for a peer, or give --force", exit_code=1,
        )
    removed = agent.input(agent.core.reseed)
    return {"removed_records": removed, "generation": agent.core.generation}


async def _ping(agent: Agent, request: dict[str, Any]) -> Any:
    return {"version": __version__, "name": agent.config.name,
            "uptime_s": round(agent.clock() - agent.started_at, 1),
            "listen": format_address(agent.listen_address or agent.config.listen)}


def _sync(function: Callable[[Agent], Any]) -> Callable[[Agent, dict[str, Any]], Awaitable[Any]]:
    async def verb(agent: Agent, request: dict[str, Any]) -> Any:
        return function(agent)

    return verb


_VERBS: dict[str, Callable[[Agent, dict[str, Any]], Awaitable[Any]]] = {
    "ping": _ping,
    "members": _sync(members),
    "status": _sync(status),
    "info": _sync(info),
    "health": _sync(health),
    "metrics": _sync(render_metrics),
    "put": _put,
    "get": _get,
    "delete": _delete,
    "list": _list,
    "policy_private_keys": _policy_private_keys,
    "policy_wep": _policy_wep,
    "policy_show": _policy_show,
    "tags_set": _tags_set,
    "repair": _repair,
    "reseed": _reseed,
    "owners": _owners,
    **ADMIN_VERBS,
}
_VERBS.update(trust_verbs())


# The OpenPGP verbs live with their helpers (keys_api.py, which imports this module for
# to_json). keys_api, the OpenPGP code and pysequoia (several MiB) are imported at the
# first request that needs them, not when the agent starts. The names are keys_api's
# KEY_VERBS (tests/runtime/test_agent_start.py checks that they agree).
KEY_VERB_NAMES = ("keys_import", "keys_known", "keys_show", "keys_search", "keys_export")
# Datasets keyed by fingerprint: `get` and `delete` accept any key reference there.
KEY_DATASETS = frozenset({"consumers", "private_keys", "org_keys", "trusted_keys"})


def _key_verb(name: str) -> Callable[[Agent, dict[str, Any]], Awaitable[Any]]:
    async def run(agent: Agent, request: dict[str, Any]) -> Any:
        from .keys_api import KEY_VERBS

        return await KEY_VERBS[name](agent, request)

    return run


_VERBS.update({name: _key_verb(name) for name in KEY_VERB_NAMES})


def _record_key(agent: Agent, dataset: str, text: str) -> str:
    """A key dataset's record key from any spelling of a fingerprint or a key ID."""
    if dataset not in KEY_DATASETS:
        return text
    from .keys_api import KeyLookupError, resolve_key

    try:
        return resolve_key(agent.store, dataset, text)
    except KeyLookupError as error:
        raise ControlError(str(error), exit_code=1) from None


async def handle(agent: Agent, request: Any, *, user: str = "in-process") -> Any:
    """Carry out one request for `user` (the socket peer's credentials, for the audit)."""
    if not isinstance(request, dict):
        raise ControlError("a request must be a JSON object with a 'verb'")
    verb = request.get("verb")
    function = _VERBS.get(verb) if isinstance(verb, str) else None
    if function is None:
        raise ControlError(f"unknown verb {verb!r}; known: {', '.join(sorted(_VERBS))}")
    if verb not in AUDITED_VERBS:
        return await function(agent, request)
    try:
        result = await function(agent, request)
    except ControlError as error:
        audit(user, verb, request, f"refused: {error}")
        raise
    audit(user, verb, request, outcome(result))
    return result
