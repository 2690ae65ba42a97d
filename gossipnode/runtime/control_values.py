"""How control requests carry values and arguments, and how replies show records.

Rules:
1. Record values travel as JSON objects; bytes inside them as {"$bytes": BASE64}
   (`to_json`, `from_json`). A map with the one key "$bytes" is always bytes: base64 that
   does not decode is refused, never taken for a map.
2. A record in a reply is {"dataset", "key", "value", "version": {"wall_ms", "counter",
   "origin"}}; a tombstone's value is null (`record_json`).
3. Arguments are checked once, here, and refused with a ControlError (exit 2) naming the
   argument: a record's dataset must be a known one, a name a non-empty string.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ..core.catalog import dataset as lookup_dataset
from ..core.errors import LocalProtocolError
from ..core.records import Record
from ..identity import format_node_id, parse_node_id
from ..wire.cbor import decode_value
from .control_errors import ControlError

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["dataset_argument", "from_json", "member_id", "record_json", "text_argument",
           "to_json"]


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
        if len(value) == 1 and "$bytes" in value and isinstance(value["$bytes"], str):
            try:
                return base64.b64decode(value["$bytes"], validate=True)
            except ValueError:
                raise ControlError("a $bytes value must be base64") from None
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def record_json(record: Record, decoded: Any = None) -> dict[str, Any]:
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


def text_argument(request: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = request.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ControlError(f"argument {name!r} must be a non-empty string")
    return value


def dataset_argument(request: dict[str, Any]) -> str:
    """The request's `dataset`: a known dataset's name."""
    name = text_argument(request, "dataset")
    try:
        lookup_dataset(name)
    except LocalProtocolError as error:
        raise ControlError(str(error)) from None
    return name


def member_id(agent: Agent, name_or_id: str) -> bytes:
    """The node id of the member with that name, or the node id written out."""
    for member in agent.core.members():
        if member.name == name_or_id:
            return member.node_id
    try:
        return parse_node_id(name_or_id)
    except ValueError:
        raise ControlError(f"no member named {name_or_id!r}") from None
