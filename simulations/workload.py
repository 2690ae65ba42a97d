"""The client workload of a fault phase: writes and deletes in every dataset.

Each `operate()` makes one operation through a random live node's core, drawn from the
workload's own random stream: writes to the `all`-scope datasets, private keys (through a
node that is eligible by ground truth), WEP mailbox messages, deletes of keys written
earlier, and node-local settings (which must never leave their node). Keys come from
small key spaces so that the same key is written on several nodes concurrently and
last-writer-wins has conflicts to resolve.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gossipnode.core.catalog import DATASETS, Scope

if TYPE_CHECKING:
    from .cluster import Cluster

__all__ = ["Workload", "WorkloadMix"]

SHARED_DATASETS = tuple(d.name for d in DATASETS
                        if d.scope is Scope.ALL and d.name != "cluster_policy")
LOCAL_DATASETS = tuple(d.name for d in DATASETS if d.scope is Scope.LOCAL)


@dataclass(frozen=True, slots=True)
class WorkloadMix:
    """Relative weights of the operations, and the key spaces they draw from."""

    shared_writes: int = 60
    private_key_writes: int = 12
    mailbox_writes: int = 15
    deletes: int = 10
    local_writes: int = 3
    keys_per_dataset: int = 16
    mailboxes: int = 12
    messages_per_mailbox: int = 6


class Workload:
    def __init__(self, cluster: Cluster, *, rate_per_s: float = 4.0,
                 mix: WorkloadMix = WorkloadMix()) -> None:
        self.cluster = cluster
        self.rng: random.Random = cluster.workload_rng
        self.interval_s = 1.0 / rate_per_s
        self.mix = mix
        self.sequence = 0
        self._operations = (self._write_shared, self._write_private_key,
                            self._write_mailbox, self._delete, self._write_local)
        self._weights = (mix.shared_writes, mix.private_key_writes, mix.mailbox_writes,
                         mix.deletes, mix.local_writes)

    def operate(self) -> None:
        live = self.cluster.live_nodes()
        if not live:
            return
        self.sequence += 1
        operation = self.rng.choices(self._operations, self._weights)[0]
        operation(live)

    def _value(self, writer: str) -> dict[str, object]:
        return {"sequence": self.sequence, "writer": writer}

    def _write_shared(self, live: list) -> None:
        node = self.rng.choice(live)
        dataset = self.rng.choice(SHARED_DATASETS)
        key = f"key{self.rng.randrange(self.mix.keys_per_dataset)}"
        self.cluster.write(node, dataset, key, self._value(node.name))

    def _write_private_key(self, live: list) -> None:
        eligible = [node for node in live if self.cluster.checkers.eligible(node)]
        if not eligible:
            return
        node = self.rng.choice(eligible)
        key = f"user{self.rng.randrange(self.mix.keys_per_dataset)}"
        self.cluster.write(node, "private_keys", key, self._value(node.name))

    def _write_mailbox(self, live: list) -> None:
        node = self.rng.choice(live)
        mailbox = self.rng.randrange(self.mix.mailboxes)
        message = self.rng.randrange(self.mix.messages_per_mailbox)
        self.cluster.write(node, "web_messenger", f"mailbox{mailbox}/message{message}",
                           self._value(node.name))

    def _delete(self, live: list) -> None:
        written = [key for key, record in self.cluster.checkers.acknowledged.items()
                   if record.value is not None and key[0] != "cluster_policy"]
        if not written:
            return
        dataset, key = self.rng.choice(written)
        candidates = live
        if dataset == "private_keys":
            candidates = [node for node in live if self.cluster.checkers.eligible(node)]
            if not candidates:
                return
        self.cluster.delete(self.rng.choice(candidates), dataset, key)

    def _write_local(self, live: list) -> None:
        node = self.rng.choice(live)
        dataset = self.rng.choice(LOCAL_DATASETS)
        self.cluster.write(node, dataset, "settings", self._value(node.name))
