"""Control verbs that change membership at run time, as serf's do, and the key import
summary for the audit log.

- `join` {"address": "HOST:PORT"}: swap state with that member; waits up to `JOIN_WAIT_S`
  for a member at that address to be alive here (exit 1 if none answered).
- `leave`: answer, then leave the cluster gracefully and exit (as SIGTERM does).
- `force_leave` {"node": NAME or ID}: a dead member is marked left and reaped now, so
  health stops reporting it; a live or suspect one is refused (exit 1). Under
  administrators the request carries the administrator-signed `force_left/<id>` record
  (dataset, key, value, wall_ms, counter, signer, signature, as `put_signed`), stored here
  and replicated, so every member forgets the member and gossip cannot bring it back
  (core/membership/state.py rule 9); unsigned, it is refused. In an open cluster it acts
  on this node only ("replicated": false).
- `keys_import` {"keys": N, "stored": N, "refused": N, "file": NAME}: the summary a
  `gossipnode keys import` sends when done, so the audit log names who imported what.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from ..config import format_address, parse_address
from ..core.authority import force_left_bound, force_left_key
from ..core.errors import LocalProtocolError
from ..core.membership import DEAD
from ..core.placement import POLICY_DATASET
from ..identity import parse_node_id, short_id
from .control_errors import ControlError
from .trust import signed_record

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["ADMIN_VERBS"]

# A join is one push-pull round trip on a LAN; allow for a handshake and a busy machine.
JOIN_WAIT_S = 10.0
JOIN_POLL_S = 0.05


def _member(agent: Agent, name_or_id: str) -> Any:
    members = agent.core.members()
    for member in members:
        if member.name == name_or_id:
            return member
    try:
        node_id = parse_node_id(name_or_id)
    except ValueError:
        raise ControlError(f"no member named {name_or_id!r}") from None
    for member in members:
        if member.node_id == node_id:
            return member
    raise ControlError(f"no member with id {name_or_id!r}")


def _alive_at(agent: Agent, address: tuple[str, int]) -> Any:
    dialled = dict(agent.config.address_map)
    for member in agent.core.members():
        if member.node_id == agent.core.node_id or member.state != "alive":
            continue
        at = tuple(member.address)
        if address in (at, dialled.get(at)):
            return member
    return None


async def _join(agent: Agent, request: dict[str, Any]) -> Any:
    text = request.get("address")
    try:
        address = parse_address(text)
    except ValueError as error:
        raise ControlError(f"bad address: {error}") from None
    seeds = tuple(dict.fromkeys((*agent.config.join, address)))
    agent.input(lambda now: agent.core.join(seeds, now))
    member = None
    with trio.move_on_after(JOIN_WAIT_S):
        # Membership changes raise no event the shell could wait on here: poll.
        while (member := _alive_at(agent, address)) is None:  # noqa: ASYNC110
            await trio.sleep(JOIN_POLL_S)
    if member is None:
        raise ControlError(f"no member answered at {format_address(address)} within "
                           f"{JOIN_WAIT_S:.0f} s (see `gossipnode status` for refusals)",
                           exit_code=1)
    return {"joined": member.name, "id": short_id(member.node_id),
            "members": len(agent.core.members())}


async def _leave(agent: Agent, request: dict[str, Any]) -> Any:
    agent.stop()  # the reply goes out before the agent announces its leave and exits
    return {"leaving": agent.config.name}


async def _force_leave(agent: Agent, request: dict[str, Any]) -> Any:
    name = request.get("node")
    if not isinstance(name, str) or not name:
        raise ControlError("argument 'node' must be a member's name or node id")
    member = _member(agent, name)
    if member.node_id == agent.core.node_id:
        raise ControlError("this is the local node: use `gossipnode leave`")
    if member.state != DEAD:
        raise ControlError(f"member {member.name} is {member.state}, not dead: only a dead "
                           "member can be forced out", exit_code=1)
    shown = {"removed": member.name, "id": short_id(member.node_id)}
    if "signature" in request:
        return {**shown, **_force_leave_signed(agent, member, request), "replicated": True}
    if agent.core.policy.enforced:
        raise ControlError("under administrators a force-leave is signed and replicated: "
                           "give --admin-key FILE or set GOSSIPNODE_ADMIN_KEY")
    if not agent.input(lambda now: agent.core.force_leave(member.node_id, now)):
        raise ControlError(f"member {member.name} is no longer dead", exit_code=1)
    return {**shown, "replicated": False}


def _force_leave_signed(agent: Agent, member: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The administrator's signed `force_left/<id>` record for `member`: stored here (which
    forgets the member at once) and replicated like every administrative record."""
    record = signed_record(request)
    if record.dataset != POLICY_DATASET or record.key != force_left_key(member.node_id):
        raise ControlError(f"the signed record must be {POLICY_DATASET}/"
                           f"{force_left_key(member.node_id)}")
    try:
        bound = None if record.value is None else force_left_bound(
            agent.core.decode_value(record.value))
    except ValueError:
        bound = None
    if bound is None:
        raise ControlError('the signed value must be {"incarnation": N}')
    if bound < member.incarnation:
        raise ControlError(f"member {member.name} is at incarnation {member.incarnation}, "
                           f"above the signed {bound}: it came back; sign again", exit_code=1)
    try:
        agent.input(lambda now: agent.core.write_signed(record, now))
    except LocalProtocolError as error:
        raise ControlError(str(error)) from None
    return {"incarnation": bound}


async def _keys_import(agent: Agent, request: dict[str, Any]) -> Any:
    for field in ("keys", "stored", "refused"):
        if type(request.get(field)) is not int or request[field] < 0:
            raise ControlError(f"argument {field!r} must be a count")
    return {"logged": True}


ADMIN_VERBS: dict[str, Callable[[Agent, dict[str, Any]], Awaitable[Any]]] = {
    "join": _join,
    "leave": _leave,
    "force_leave": _force_leave,
    "keys_import": _keys_import,
}
