"""Output helpers shared by the client verbs: JSON, aligned tables, ages, tags, sections.

Human output goes to stdout as aligned tables (serf, consul) or `section:` blocks of
`key = value` lines (consul info); `--json` output is one JSON document, indented, keys sorted,
so scripts and people can diff it. Nothing here talks to the agent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..cli import print_table

__all__ = [
    "format_age",
    "format_grants",
    "format_tags",
    "format_time_ms",
    "print_json",
    "print_pairs",
    "print_sections",
    "print_table",
    "summarize",
]

# A value shown inline in a table is cut to this many characters (the rest: `get`).
SUMMARY_CHARACTERS_MAX = 60
# Tags every member carries that say nothing an operator filters on; `--json` still has them.
_QUIET_TAGS = frozenset({"version", "generation"})


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def format_age(seconds: float | None) -> str:
    """`3.2s` for an age in seconds, `-` when it is unknown (never happened)."""
    return "-" if seconds is None else f"{seconds:.1f}s"


def format_time_ms(wall_ms: int) -> str:
    """A version's wall clock as UTC ISO 8601 with milliseconds."""
    moment = time.gmtime(wall_ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{wall_ms % 1000:03d}Z"


def format_tags(tags: Mapping[str, Any]) -> str:
    """`private_keys=false,wep=true,...`: booleans lower case, sorted, housekeeping tags left
    out (version, generation)."""
    shown = []
    for key in sorted(tags):
        if key in _QUIET_TAGS:
            continue
        value = tags[key]
        shown.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    return ",".join(shown) or "-"


def format_grants(grants: Mapping[str, Any]) -> str:
    """`admitted,private_keys`, `not admitted`, or `open` in a cluster with no administrator
    key (every member trusted)."""
    if not grants.get("enforced"):
        return "open"
    if not grants.get("admitted"):
        return "not admitted"
    return ",".join(name for name in ("admitted", "private_keys", "wep") if grants.get(name))


def summarize(value: Any) -> str:
    """A record value as compact JSON, cut to `SUMMARY_CHARACTERS_MAX` characters."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(text) > SUMMARY_CHARACTERS_MAX:
        return text[: SUMMARY_CHARACTERS_MAX - 3] + "..."
    return text


def print_sections(sections: Mapping[str, Mapping[str, Any]]) -> None:
    """consul info style: `section:` then one indented `key = value` line per entry."""
    for name in sorted(sections):
        print(f"{name}:")
        for key in sorted(sections[name]):
            value = sections[name][key]
            if isinstance(value, bool):
                value = str(value).lower()
            print(f"\t{key} = {value}")


def print_pairs(pairs: Sequence[tuple[str, object]]) -> None:
    """`Label:  value` lines with the values aligned."""
    width = max(len(label) for label, _ in pairs) + 1
    for label, value in pairs:
        print(f"{label + ':':<{width}}  {value}")
