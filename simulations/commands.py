"""The client-facing verbs of the scenario DSL: writes, deletes, policy and tag changes.

Each goes through the node's core exactly as the agent's control socket does: data writes
and deletes through group commit (`commit_writes` of gossipnode/driving.py: every write
that arrives while a batch syncs waits for the next batch, at most `WRITE_BATCH_MAX` per
batch and `WRITE_QUEUE_MAX` waiting), policy writes with `put`, tags with `set_tags`.
Every write the core acknowledges is reported to the checkers as ground truth. A
LocalProtocolError is the core refusing the command: counted, not acknowledged.

Group commit in virtual time: a batch is taken when the disk is idle, and `write_many` is
called when its sync completes, `sync_s` later; acknowledgements and pushes happen then.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gossipnode.config import TagsConfig
from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.records import Record
from gossipnode.driving import WRITE_BATCH_MAX, WRITE_QUEUE_MAX, commit_writes
from gossipnode.wire.cbor import encode_value

from .node import PendingWrite, SimNode, tag_map
from .oracle import POLICY_DATASET, PRIVATE_KEYS_POLICY_PREFIX, WEP_POLICY_KEY

if TYPE_CHECKING:
    from .checkers import Checkers
    from .clock import EventQueue

__all__ = ["ClientCommands"]


class ClientCommands:
    """Mixed into `Cluster`, which provides the attributes declared here."""

    checkers: Checkers
    queue: EventQueue
    refused: int
    nodes: list[SimNode]

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
              value: Mapping[str, Any]) -> PendingWrite:
        """Submit a write to the node's group commit; the outcome is in the returned
        PendingWrite once its batch is synced (`sync_s` later at the earliest)."""
        return self._submit(node, PendingWrite(dataset, key, encode_value(dict(value))))

    def delete(self, node: SimNode, dataset: str, key: str) -> PendingWrite:
        return self._submit(node, PendingWrite(dataset, key, None))

    def _submit(self, node: SimNode, pending: PendingWrite) -> PendingWrite:
        if node.core is None:
            pending.error = "the node is down"
        elif len(node.writes) >= WRITE_QUEUE_MAX:
            pending.error = "the write queue is full"
        if pending.error is not None:
            self.refused += 1
            return pending
        node.writes.append(pending)
        if not node.committing:
            node.committing = True
            # At this instant, after the events already due: writes made together batch.
            self.queue.push(self.queue.now, "commit", (node.index, node.epoch))
        return pending

    def _group_commit(self, kind: str, payload: tuple[int, int]) -> None:
        """"commit": take a batch and start its sync; "synced": the sync completed, so
        the batch goes through `write_many` and every writer gets its answer."""
        index, epoch = payload[0], payload[1]
        node = self.nodes[index]
        if node.epoch != epoch or node.core is None:
            # The process died: its waiting writes were abandoned with it, and so is a
            # batch whose sync had not completed (never acknowledged, so nothing is owed).
            for pending in payload[2] if kind == "synced" else ():
                pending.error = "the node went down"
                self.refused += 1
            return
        if kind == "commit":
            batch, node.writes = node.writes[:WRITE_BATCH_MAX], node.writes[WRITE_BATCH_MAX:]
            self.queue.push(self.queue.now + node.sync_s, "synced", (index, epoch, batch))
            return
        batch = payload[2]
        before = {(p.dataset, p.key): node.store.get(p.dataset, p.key) for p in batch}
        writes = [(p.dataset, p.key, p.value) for p in batch]
        results = self._input(node, lambda core, now: commit_writes(core, writes, now),
                              command=True)
        if results is None:  # the core raised out of the batch: it is gone
            results = [LocalProtocolError("the node failed")] * len(batch)
        written = {(r.dataset, r.key) for r in results if isinstance(r, Record)}
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, Record):
                pending.record = result
                self.checkers.acknowledge(node, result)
            else:
                pending.error = str(result)
                self.refused += 1
                key = (pending.dataset, pending.key)
                if key not in written and node.store.get(*key) != before[key]:
                    self.checkers.violate("refusal", f"{node.name} refused a write to "
                                          f"{key[0]}/{key[1]} and stored it anyway")
        if node.writes and node.core is not None:
            self.queue.push(self.queue.now, "commit", (index, epoch))
        else:
            node.committing = False

    def _abandon_writes(self, node: SimNode) -> None:
        """The process died with writes waiting: their clients see the connection close."""
        for pending in node.writes:
            pending.error = "the node went down"
            self.refused += 1
        node.writes = []
        node.committing = False

    def set_policy(self, node: SimNode, *, private_keys: Mapping[SimNode, bool] = {},
                   wep_replication: bool | None = None, wep_replicas: int | None = None,
                   wep_eligible: Sequence[str] | None = None) -> None:
        """Write cluster policy records through `node`: per-member private-key permission
        and the WEP settings (unnamed WEP settings keep their current ground-truth value)."""
        for member, allow in private_keys.items():
            self._put_policy(node, PRIVATE_KEYS_POLICY_PREFIX + member.node_id.hex(),
                             {"allow": allow})
        if (wep_replication, wep_replicas, wep_eligible) != (None, None, None):
            policy = self.checkers.policy
            eligible = sorted(policy.wep_eligible) if policy.wep_eligible else []
            self._put_policy(node, WEP_POLICY_KEY, {
                "replication": policy.wep_replication if wep_replication is None
                else wep_replication,
                "replicas": policy.wep_replicas if wep_replicas is None else wep_replicas,
                "eligible": eligible if wep_eligible is None else list(wep_eligible),
            })

    def _put_policy(self, node: SimNode, key: str, value: Mapping[str, Any]) -> None:
        """A policy write: unbatched `put`, as the agent's control socket makes it."""
        encoded = encode_value(dict(value))
        record = self._command(node, lambda core, now: core.put(POLICY_DATASET, key,
                                                                encoded, now))
        if record is not None:
            self.checkers.acknowledge(node, record)

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
