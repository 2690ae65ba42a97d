"""The virtual network: per-message fate (latency, loss, duplication, reordering) and
partitions between groups of nodes.

Rules:
1. The network knows nodes only by index. It decides, for one message from `source` to
   `target`, how many copies arrive and after which delays; the cluster queues them.
2. All chance comes from the one `random.Random` the cluster hands in, drawn in a fixed
   order per message (loss, then duplication, then delay of each copy), so one seed
   gives one run.
3. A partition blocks a direction of traffic between two groups: two-way blocks both,
   one-way blocks only `a -> b`. Blocked messages vanish silently, as on a link that
   black-holes packets; the sender learns nothing. `heal` removes every partition.
4. A message already in flight when a partition starts is still delivered: the cut
   applies at send time (it left the sender's interface before the link failed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

__all__ = ["CALM", "STORMY", "Network", "NetworkFaults"]


@dataclass(frozen=True, slots=True)
class NetworkFaults:
    """The chance of each network fault. Rates are per message, in [0, 1]."""

    # One-way delay of a LAN hop: base latency plus a uniform jitter on top.
    latency_s: float = 0.001
    jitter_s: float = 0.002
    loss_rate: float = 0.0
    duplicate_rate: float = 0.0
    # A reordered message is held back by up to `reorder_delay_s` extra, so that later
    # messages on the same path overtake it (jitter alone reorders only within jitter_s).
    reorder_rate: float = 0.0
    reorder_delay_s: float = 0.2

    def __post_init__(self) -> None:
        for rate in (self.loss_rate, self.duplicate_rate, self.reorder_rate):
            assert 0.0 <= rate <= 1.0, rate
        for delay_s in (self.latency_s, self.jitter_s, self.reorder_delay_s):
            assert delay_s >= 0, delay_s


# The liveness phase runs on a clean network: latency and jitter only.
CALM = NetworkFaults()
# The fault phase's default: rates high enough that every run sees each fault many times.
STORMY = NetworkFaults(loss_rate=0.05, duplicate_rate=0.02, reorder_rate=0.05)


@dataclass(frozen=True, slots=True)
class _Partition:
    a: frozenset[int]
    b: frozenset[int] | None  # None: every node not in `a`
    oneway: bool

    def blocks(self, source: int, target: int) -> bool:
        if source in self.a and (target not in self.a if self.b is None else target in self.b):
            return True
        if self.oneway:
            return False
        return target in self.a and (source not in self.a if self.b is None else source in self.b)


class Network:
    def __init__(self, rng: random.Random, faults: NetworkFaults = CALM) -> None:
        self.rng = rng
        self.faults = faults
        self._partitions: list[_Partition] = []
        # Virtual time of the last heal, set by the cluster (the network has no clock).
        self.healed_at = 0.0
        self.sent = 0
        self.dropped_lost = 0
        self.dropped_partitioned = 0
        self.duplicated = 0
        self.reordered = 0

    def set_faults(self, **changes: float) -> None:
        self.faults = replace(self.faults, **changes)

    def partition(self, a_group: list[int], b_group: list[int] | None = None, *,
                  oneway: bool = False) -> None:
        """Block traffic between `a_group` and `b_group` (every other node when None).
        With `oneway`, only messages from a to b are blocked."""
        a = frozenset(a_group)
        b = None if b_group is None else frozenset(b_group)
        assert b is None or not (a & b), "a node cannot be on both sides of a partition"
        self._partitions.append(_Partition(a, b, oneway))

    def isolate(self, node: int) -> None:
        """Cut one node off from every other node, both ways."""
        self.partition([node])

    def heal(self) -> None:
        self._partitions.clear()

    @property
    def partitioned(self) -> bool:
        return bool(self._partitions)

    def blocked(self, source: int, target: int) -> bool:
        return any(partition.blocks(source, target) for partition in self._partitions)

    def route(self, source: int, target: int) -> list[float]:
        """The delays (seconds) after which copies of one message arrive; [] if none does."""
        self.sent += 1
        if self.blocked(source, target):
            self.dropped_partitioned += 1
            return []
        faults, rng = self.faults, self.rng
        if faults.loss_rate and rng.random() < faults.loss_rate:
            self.dropped_lost += 1
            return []
        copies = 1
        if faults.duplicate_rate and rng.random() < faults.duplicate_rate:
            copies = 2
            self.duplicated += 1
        delays = []
        for _ in range(copies):
            delay = faults.latency_s + rng.random() * faults.jitter_s
            if faults.reorder_rate and rng.random() < faults.reorder_rate:
                delay += rng.random() * faults.reorder_delay_s
                self.reordered += 1
            delays.append(delay)
        return delays
