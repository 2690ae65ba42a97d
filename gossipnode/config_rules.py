"""Rules across settings of a node configuration: what no single key's type can say.

`check_config` is applied by `config_file.load_config`, so the agent and `validate` apply it
alike. Standard library only, like config.py.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .config import DURABILITY_MODES, MEMBERS_MAX_LIMIT, RECORD_OVERHEAD_BYTES_MAX, WRITERS

if TYPE_CHECKING:
    from .config import NodeConfig

__all__ = ["check_config"]

_SECTIONS = ("tags", "limits", "replication", "reconcile", "membership", "wire", "storage")
# Counts that may be zero (no indirect probes; no local-health stretching); every other
# count and every interval must be positive: a zero interval spins a core.
_ZERO_ALLOWED = frozenset({"membership.indirect_probes", "membership.awareness_max"})


def check_config(config: NodeConfig) -> tuple[str, str] | None:
    """Every rule across settings that a single key's type cannot say: positive intervals
    and counts, and limits that must fit each other. Returns (key, reason) for the first
    broken rule, or None. `load_config` (the agent and `validate`) applies it."""
    for section in _SECTIONS:
        values = getattr(config, section)
        for item in dataclasses.fields(values):
            value = getattr(values, item.name)
            key = f"{section}.{item.name}"
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if value <= 0 and key not in _ZERO_ALLOWED:
                return key, f"must be positive, got {value}"
    membership, wire, limits = config.membership, config.wire, config.limits
    if membership.probe_timeout_s >= membership.probe_interval_s:
        return ("membership.probe_timeout_s",
                f"must be shorter than membership.probe_interval_s "
                f"({membership.probe_interval_s})")
    if membership.members_max > MEMBERS_MAX_LIMIT:
        return ("membership.members_max",
                f"must be at most {MEMBERS_MAX_LIMIT} (the protocol's bound on the statements "
                f"of one membership message), got {membership.members_max}")
    if config.reconcile.branching < 2:
        return "reconcile.branching", "must be at least 2"
    record_max = limits.record_bytes_max + limits.key_bytes_max + RECORD_OVERHEAD_BYTES_MAX
    if record_max > wire.push_bytes_max:
        return ("limits.record_bytes_max",
                f"a record of {limits.record_bytes_max} bytes (plus its key) does not fit "
                f"half a frame (wire.frame_bytes_max = {wire.frame_bytes_max})")
    for key, value in (("reconcile.message_bytes_max", config.reconcile.message_bytes_max),
                       ("membership.gossip_message_bytes_max",
                        membership.gossip_message_bytes_max)):
        if value > wire.push_bytes_max:
            return key, (f"must be at most half of wire.frame_bytes_max "
                         f"({wire.push_bytes_max}), got {value}")
    if config.replication.tombstone_grace_s <= config.replication.anti_entropy_interval_s:
        return ("replication.tombstone_grace_s",
                "must be longer than replication.anti_entropy_interval_s")
    if config.storage.durability not in DURABILITY_MODES:
        return ("storage.durability", f"expected one of {', '.join(DURABILITY_MODES)}, "
                f"got {config.storage.durability!r}")
    if config.storage.writer not in WRITERS:
        return ("storage.writer", f"expected one of {', '.join(WRITERS)}, "
                f"got {config.storage.writer!r}")
    if config.storage.writer in ("thread", "process") and \
            config.storage.durability != "fsync":
        # A batch handed over is not yet committed: only its sync may acknowledge it.
        return "storage.writer", (f'"{config.storage.writer}" needs '
                                  'storage.durability = "fsync"')
    if config.metrics_listen is not None and config.metrics_listen == config.listen:
        return "metrics_listen", "must differ from listen"
    return None
