"""The audit trail: every administrative action, with the local user who asked, logged at
INFO on the `gossipnode.audit` logger (so it can be routed or filtered on its own).

One line per action: who (user name, uid and pid from the control socket's peer
credentials), what (the verb and its arguments, record values left out), and how it ended.
"""

from __future__ import annotations

import json
import logging
from typing import Any

__all__ = ["AUDITED_VERBS", "audit", "outcome"]

logger = logging.getLogger("gossipnode.audit")

AUDITED_VERBS = frozenset({
    "policy_private_keys", "policy_wep", "tags_set", "delete", "reseed", "repair",
    "join", "leave", "force_leave", "keys_import", "put_signed", "resign_private_keys",
})
# Arguments never written to the log: record values can hold anything, secrets included.
_HIDDEN = frozenset({"verb", "value"})
# Strings longer than this are not logged either (a key, a certificate, a blob): only scalars
# an operator typed are worth a line, and a container is logged by its size alone, so no
# argument nested in a list or map (the keys of `keys_import`, say) reaches the log.
SCALAR_CHARS_MAX = 120
# A logged argument longer than this is cut: the audit line stays one readable line.
ARGUMENT_CHARS_MAX = 200


def audit(user: str, verb: str, request: dict[str, Any], result: str) -> None:
    arguments = {k: _shown(v) for k, v in sorted(request.items()) if k not in _HIDDEN}
    text = json.dumps(arguments, sort_keys=True, default=str)
    if len(text) > ARGUMENT_CHARS_MAX:
        text = text[:ARGUMENT_CHARS_MAX] + "..."
    logger.info("audit: %s: %s %s: %s", user, verb, text, result)


def _shown(value: Any) -> Any:
    """What the audit line shows of one argument: short scalars as they are, the rest by size."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= SCALAR_CHARS_MAX else f"<{len(value)} characters>"
    if isinstance(value, list | tuple | dict):
        return f"<{type(value).__name__} of {len(value)}>"
    return f"<{type(value).__name__}>"


def outcome(result: Any) -> str:
    """A short summary of a verb's result for the audit line."""
    if isinstance(result, dict):
        shown = {k: v for k, v in result.items() if isinstance(v, str | int | float | bool)}
        return "ok " + json.dumps(shown, sort_keys=True)[:ARGUMENT_CHARS_MAX]
    return "ok"


def log_quarantine(entered: bool, reason: str = "") -> None:
    if entered:
        logger.info("audit: quarantine entered: %s", reason)
    else:
        logger.info("audit: quarantine left")
