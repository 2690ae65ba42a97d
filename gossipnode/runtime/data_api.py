"""The data verbs of the control socket: put, get, delete and list.

- `put` {"dataset", "key", "value": MAP}: stored as given (not merged with what was
  there) and answered once durable, sharing its disk sync with the writes that arrived
  at the same time (Agent.write); the reply is the stored record.
- `get` / `delete` {"dataset", "key"}: exit 1 when there is no such record (a tombstone
  is none). In datasets keyed by fingerprint the key may be any spelling of a
  fingerprint or key ID.
- `list` {"dataset", "prefix", "after", "limit", "page"}: records in key order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..core.errors import LocalProtocolError
from ..core.records import Record
from ..wire.cbor import CborError, encode_value
from .control_errors import ControlError
from .control_values import dataset_argument, from_json, record_json, text_argument

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["DATA_VERBS", "KEY_DATASETS", "LIST_LIMIT_DEFAULT", "LIST_LIMIT_MAX"]

# `list` returns at most this many records unless asked for fewer.
LIST_LIMIT_DEFAULT = 1000
LIST_LIMIT_MAX = 100_000
# Datasets keyed by fingerprint: `get` and `delete` accept any key reference there.
KEY_DATASETS = frozenset({"consumers", "private_keys", "org_keys", "trusted_keys"})


async def _write(agent: Agent, dataset: str, key: str, value: bytes | None) -> Record:
    """A client write, made durable with whatever other writes arrived at the same time."""
    try:
        return await agent.write(dataset, key, value)
    except LocalProtocolError as error:
        raise ControlError(str(error)) from None


async def _put(agent: Agent, request: dict[str, Any]) -> Any:
    dataset, key = dataset_argument(request), text_argument(request, "key")
    value = from_json(request.get("value"))
    if not isinstance(value, dict):
        raise ControlError("the value must be a JSON object (a map)")
    try:
        encoded = encode_value(value)
    except CborError as error:
        raise ControlError(str(error)) from None
    record = await _write(agent, dataset, key, encoded)
    # Stored as given (not merged with what was there): the value is the request's own.
    return record_json(record, value if record.value == encoded else None)


async def _delete(agent: Agent, request: dict[str, Any]) -> Any:
    dataset = dataset_argument(request)
    key = _record_key(agent, dataset, text_argument(request, "key"))
    current = agent.store.get(dataset, key)
    if current is None or current.value is None:  # absent, or already a tombstone
        raise ControlError(f"no record {dataset}/{key}", exit_code=1)
    return record_json(await _write(agent, dataset, key, None))


async def _get(agent: Agent, request: dict[str, Any]) -> Any:
    dataset = dataset_argument(request)
    key = _record_key(agent, dataset, text_argument(request, "key"))
    record = agent.store.get(dataset, key)
    if record is None or record.value is None:
        raise ControlError(f"no record {dataset}/{key}", exit_code=1)
    return record_json(record)


async def _list(agent: Agent, request: dict[str, Any]) -> Any:
    """Records in key order after `after` (exclusive). With `page: true` the result is
    {"records": [...], "next": KEY or null}: `next` is the `after` of the next page, null
    when there is no more; without it, the bare list (older clients)."""
    dataset = dataset_argument(request)
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
    records = [record_json(r) for r in found[:limit]]
    if not request.get("page"):
        return records
    return {"records": records, "next": records[-1]["key"] if len(found) > limit else None}


def _record_key(agent: Agent, dataset: str, text: str) -> str:
    """A key dataset's record key from any spelling of a fingerprint or a key ID."""
    if dataset not in KEY_DATASETS:
        return text
    # The OpenPGP code (and pysequoia) loads at the first request that needs it.
    from .keys_api import KeyLookupError, resolve_key

    try:
        return resolve_key(agent.store, dataset, text)
    except KeyLookupError as error:
        raise ControlError(str(error), exit_code=1) from None


DATA_VERBS: dict[str, Callable[[Agent, dict[str, Any]], Awaitable[Any]]] = {
    "put": _put,
    "get": _get,
    "delete": _delete,
    "list": _list,
}
