"""The control verbs and status fields of the trust model (core/authority.py): grants as
operators see them, and administrative records signed by the CLI.

The administrator's secret key never reaches the agent: the CLI signs a record (dataset,
key, version, value) and sends it whole; `write_signed` stores it only if a pinned
administrator key signed it.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from ..core.authority import ADMIN_DATASETS, GRANTS
from ..core.errors import LocalProtocolError
from ..core.records import NODE_ID_BYTES, WALL_MS_MAX, Record, Version
from ..identity import format_node_id

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["grants_of", "signed_record", "trust_verbs"]

SIGNATURE_BYTES = 64


def grants_of(agent: Agent, node_id: bytes) -> dict[str, Any]:
    """{"admitted": bool, "private_keys": bool, "wep": bool, "enforced": bool} for a member."""
    policy = agent.core.policy
    shown: dict[str, Any] = {name: policy.granted(node_id, name) for name in GRANTS}
    shown["enforced"] = policy.enforced
    return shown


def _bytes(request: dict[str, Any], name: str, size: int | None = None) -> bytes:
    from .control_api import ControlError

    text = request.get(name)
    if not isinstance(text, str):
        raise ControlError(f"argument {name!r} must be base64 text")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ControlError(f"argument {name!r} must be base64 text") from None
    if size is not None and len(data) != size:
        raise ControlError(f"argument {name!r} must be {size} bytes, got {len(data)}")
    return data


def signed_record(request: dict[str, Any]) -> Record:
    """The administrative record a request carries (dataset, key, value, wall_ms, counter,
    signer, signature), checked for shape; the signature is the core's to check. Raises
    ControlError."""
    from .control_api import ControlError

    dataset, key = request.get("dataset"), request.get("key")
    if dataset not in ADMIN_DATASETS:
        raise ControlError(f"only administrative datasets ({', '.join(sorted(ADMIN_DATASETS))}) "
                           "take signed writes")
    if not isinstance(key, str) or not key:
        raise ControlError("argument 'key' must be a non-empty string")
    value = None if request.get("value") is None else _bytes(request, "value")
    wall_ms, counter = request.get("wall_ms"), request.get("counter")
    if type(wall_ms) is not int or not 0 <= wall_ms <= WALL_MS_MAX or type(counter) is not int \
            or not 0 <= counter < 2**32:
        raise ControlError("arguments 'wall_ms' and 'counter' must be a version stamp")
    origin = _bytes(request, "signer", NODE_ID_BYTES)
    signature = _bytes(request, "signature", SIGNATURE_BYTES)
    return Record(dataset, key, value, Version(wall_ms, counter, origin), signature)


async def _put_signed(agent: Agent, request: dict[str, Any]) -> Any:
    """Store an administrative record signed by the CLI (see the module docstring)."""
    from .control_api import ControlError
    from .control_values import record_json

    record = signed_record(request)
    try:
        stored = agent.input(lambda now: agent.core.write_signed(record, now))
    except LocalProtocolError as error:
        raise ControlError(str(error)) from None
    return record_json(stored)


async def _trust_show(agent: Agent, request: dict[str, Any]) -> Any:
    """The pinned administrator keys and every grant record this node accepts."""
    policy = agent.core.policy
    names = {m.node_id: m.name for m in agent.core.members()}
    return {
        "enforced": policy.enforced,
        "admin_keys": [
            base64.b64encode(k).decode() for k in sorted(agent.core.authority.admin_keys)
        ],
        "grants": [
            {"id": format_node_id(node_id), "name": names.get(node_id),
             **{name: name in granted for name in GRANTS}}
            for node_id, granted in sorted(policy.grants.items())
        ],
    }


async def _resign_private_keys(agent: Agent, request: dict[str, Any]) -> Any:
    """Re-sign the private keys other members would refuse (see NodeCore)."""
    from .control_api import ControlError

    try:
        count = agent.input(agent.core.resign_private_keys)
    except LocalProtocolError as error:
        raise ControlError(str(error)) from None
    return {"resigned": count}


def trust_verbs() -> dict[str, Any]:
    return {"put_signed": _put_signed, "trust_show": _trust_show,
            "resign_private_keys": _resign_private_keys}
