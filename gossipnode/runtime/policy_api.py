"""The policy and tag verbs of the control socket: who may hold private keys, how the web
messenger's mailboxes replicate, and this node's operator tags.

- `policy_private_keys` {"node": NAME or ID, "allow": BOOL} and `policy_wep`
  {"replication", "replicas", "eligible"} write the replicated policy record (the
  `policy` dataset) and answer with the policy now in force, as `policy_show` does.
- `tags_set` {"tags": MAP}: the reserved tags are the agent's own, `wep` and
  `private_keys` are "true" or "false"; the answer is every tag now set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..config import RESERVED_TAGS
from ..core.errors import LocalProtocolError
from ..core.placement import POLICY_DATASET, PRIVATE_KEYS_POLICY_PREFIX, WEP_POLICY_KEY
from ..core.records import Record
from ..identity import format_node_id
from ..wire.cbor import encode_value
from .control_errors import ControlError
from .control_values import member_id, text_argument

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["POLICY_VERBS", "WEP_REPLICAS_MAX"]

# `policy_wep` keeps each mailbox on at most this many members.
WEP_REPLICAS_MAX = 16


def _put_policy(agent: Agent, key: str, value: dict[str, Any]) -> Record:
    encoded = encode_value(value)
    try:
        return agent.input(lambda now: agent.core.put(POLICY_DATASET, key, encoded, now))
    except LocalProtocolError as error:
        raise ControlError(str(error)) from None


async def _policy_private_keys(agent: Agent, request: dict[str, Any]) -> Any:
    node_id = member_id(agent, text_argument(request, "node"))
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
        if type(replicas) is not int or not 1 <= replicas <= WEP_REPLICAS_MAX:
            raise ControlError(
                f"argument 'replicas' must be an integer from 1 to {WEP_REPLICAS_MAX}")
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


POLICY_VERBS: dict[str, Callable[[Agent, dict[str, Any]], Awaitable[Any]]] = {
    "policy_private_keys": _policy_private_keys,
    "policy_wep": _policy_wep,
    "policy_show": _policy_show,
    "tags_set": _tags_set,
}
