"""The client-facing verbs of the scenario DSL: writes, deletes, policy and tag changes.

Each goes through the node's core exactly as the control socket would (`put`, `delete`,
`set_tags`), and every write the core acknowledges is reported to the checkers as ground
truth. A LocalProtocolError is the core refusing the command: counted, not acknowledged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gossipnode.config import TagsConfig
from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.placement import POLICY_DATASET, PRIVATE_KEYS_POLICY_PREFIX, WEP_POLICY_KEY
from gossipnode.core.records import Record
from gossipnode.wire.cbor import encode_value

from .node import SimNode, tag_map

if TYPE_CHECKING:
    from .checkers import Checkers
    from .clock import EventQueue

__all__ = ["ClientCommands"]


class ClientCommands:
    """Mixed into `Cluster`, which provides the attributes declared here."""

    checkers: Checkers
    queue: EventQueue
    refused: int

    def _input(self, node: SimNode, action: Callable[[Any, float], Any], *,
               command: bool = False) -> Any:
        raise NotImplementedError

    def _carry_out(self, node: SimNode, event: object) -> None:
        raise NotImplementedError

    def _arm_timer(self, node: SimNode) -> None:
        raise NotImplementedError

    def _count(self, name: str) -> None:
        raise NotImplementedError

    def _command(self, node: SimNode, action: Callable[[Any, float], Any]) -> Any:
        if node.core is None:
            return None
        try:
            return self._input(node, action, command=True)
        except LocalProtocolError:
            self.refused += 1
            # The core refused the command; whatever it queued meanwhile still goes out.
            if node.core is not None:
                for event in node.core.events():
                    self._carry_out(node, event)
                self._arm_timer(node)
            return None

    def write(self, node: SimNode, dataset: str, key: str,
              value: Mapping[str, Any]) -> Record | None:
        """Put a record through the node's core; the record when acknowledged."""
        encoded = encode_value(dict(value))
        record = self._command(node, lambda core, now: core.put(dataset, key, encoded, now))
        if record is not None:
            self.checkers.acknowledge(node, record)
        return record

    def delete(self, node: SimNode, dataset: str, key: str) -> Record | None:
        record = self._command(node, lambda core, now: core.delete(dataset, key, now))
        if record is not None:
            self.checkers.acknowledge(node, record)
        return record

    def set_policy(self, node: SimNode, *, private_keys: Mapping[SimNode, bool] = {},
                   wep_replication: bool | None = None, wep_replicas: int | None = None,
                   wep_eligible: Sequence[str] | None = None) -> None:
        """Write cluster policy records through `node`: per-member private-key permission
        and the WEP settings (unnamed WEP settings keep their current ground-truth value)."""
        for member, allow in private_keys.items():
            self.write(node, POLICY_DATASET, PRIVATE_KEYS_POLICY_PREFIX + member.node_id.hex(),
                       {"allow": allow})
        if (wep_replication, wep_replicas, wep_eligible) != (None, None, None):
            policy = self.checkers.policy
            eligible = sorted(policy.wep_eligible) if policy.wep_eligible else []
            self.write(node, POLICY_DATASET, WEP_POLICY_KEY, {
                "replication": policy.wep_replication if wep_replication is None
                else wep_replication,
                "replicas": policy.wep_replicas if wep_replicas is None else wep_replicas,
                "eligible": eligible if wep_eligible is None else list(wep_eligible),
            })

    def set_tags(self, node: SimNode, *, wep: bool | None = None,
                 private_keys: bool | None = None) -> None:
        tags = node.config.tags
        tags = TagsConfig(wep=tags.wep if wep is None else wep,
                          private_keys=tags.private_keys if private_keys is None
                          else private_keys)
        node.config = dataclasses.replace(node.config, tags=tags)
        node.tags = tag_map(tags)
        node.tags_changed_at = self.queue.now
        self.checkers.truth_changed()
        advertised = dict(node.tags)
        self._command(node, lambda core, now: core.set_tags(advertised, now))

    def reseed(self, node: SimNode) -> None:
        """The operator's `gossipnode reseed`: discard replicated data and pull afresh."""
        self._count("operator reseeds")
        self._command(node, lambda core, now: core.reseed(now))

    def reseed_if_quarantined(self, node: SimNode) -> bool:
        """What an operator does when status reports the node quarantined (it was away
        past the tombstone horizon). A core without quarantine never asks for it."""
        quarantined = getattr(node.core, "quarantined", None)
        if quarantined is None or not quarantined(self.queue.now):
            return False
        self.reseed(node)
        return True
