"""The verbs of the control socket: which function answers which verb, and the audit of
administrative ones (see control.py for the protocol).

Each verb is a function taking the request's arguments and returning a JSON-ready result,
in the module of its idea: data (data_api.py), policy and tags (policy_api.py), repair,
reseed and owners (operations_api.py), membership changes (admin_api.py), trust
(trust.py), status and metrics (status.py, metrics.py), OpenPGP keys (keys_api.py).
Values and arguments: control_values.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import format_address
from .admin_api import ADMIN_VERBS
from .audit import AUDITED_VERBS, audit, outcome
from .control_errors import ControlError
from .control_values import from_json, to_json
from .data_api import DATA_VERBS, KEY_DATASETS
from .metrics import render_metrics
from .operations_api import OPERATION_VERBS
from .policy_api import POLICY_VERBS
from .status import health, info, members, status
from .trust import trust_verbs

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["KEY_DATASETS", "KEY_VERB_NAMES", "ControlError", "from_json", "handle", "to_json"]

Verb = Callable[["Agent", dict[str, Any]], Awaitable[Any]]


async def _ping(agent: Agent, request: dict[str, Any]) -> Any:
    return {"version": __version__, "name": agent.config.name,
            "uptime_s": round(agent.clock() - agent.started_at, 1),
            "listen": format_address(agent.listen_address or agent.config.listen)}


def _sync(function: Callable[[Agent], Any]) -> Verb:
    async def verb(agent: Agent, request: dict[str, Any]) -> Any:
        return function(agent)

    return verb


_VERBS: dict[str, Verb] = {
    "ping": _ping,
    "members": _sync(members),
    "status": _sync(status),
    "info": _sync(info),
    "health": _sync(health),
    "metrics": _sync(render_metrics),
    **DATA_VERBS,
    **POLICY_VERBS,
    **OPERATION_VERBS,
    **ADMIN_VERBS,
}
_VERBS.update(trust_verbs())


# The OpenPGP verbs live with their helpers (keys_api.py, which imports this module for
# to_json). keys_api, the OpenPGP code and pysequoia (several MiB) are imported at the
# first request that needs them, not when the agent starts. The names are keys_api's
# KEY_VERBS (tests/runtime/test_agent_start.py checks that they agree).
KEY_VERB_NAMES = ("keys_import", "keys_known", "keys_show", "keys_search", "keys_export")


def _key_verb(name: str) -> Verb:
    async def run(agent: Agent, request: dict[str, Any]) -> Any:
        from .keys_api import KEY_VERBS

        return await KEY_VERBS[name](agent, request)

    return run


_VERBS.update({name: _key_verb(name) for name in KEY_VERB_NAMES})


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
