"""A small synchronous cluster of NodeCores for core tests: one virtual clock, one queue of
messages with a fixed latency, optional partitions. No sockets, no sleeps."""

from __future__ import annotations

import heapq
import itertools
import random

from gossipnode.config import NodeConfig, ReplicationConfig, TagsConfig
from gossipnode.core.events import Send
from gossipnode.core.node import NodeCore
from gossipnode.core.replication import Push
from gossipnode.core.store import MemoryStore
from gossipnode.wire.cbor import decode_value, encode_value
from tests.core.membership.virtual_cluster import FakeSigning

LATENCY_S = 0.005


class Cluster:
    def __init__(self, tags: list[dict[str, bool]], *, seed: int = 1,
                 replication: ReplicationConfig | None = None, start: float = 1_000_000.0,
                 merges: dict | None = None, administrated: bool = False,
                 content_check=None):
        """`administrated`: pin an administrator key (`self.admin`: node id, sign) on every
        node, so that grants and admission apply (core/authority.py). `content_check`: the
        check every node runs on values (none by default)."""
        self.merges = merges
        self.content_check = content_check
        self.rng = random.Random(seed)
        self.now = start
        self.signing = FakeSigning()
        self.admin = self.signing.new_identity(random.Random(seed + 1)) if administrated else None
        self.queue: list[tuple[float, int, bytes, tuple[str, int], object]] = []
        self.sequence = itertools.count()
        self.blocked: set[tuple[int, int]] = set()
        # (from index, to index, message) -> True to lose that message (a test's fault).
        self.dropping = lambda sender, target, message: False
        self.sent: list[tuple[int, int, object]] = []  # (from index, to index, message)
        self.reported: list[tuple[int, object]] = []  # (index, every other event)
        self.configs = []
        self.identities = []
        self.stores = []
        self.nodes: list[NodeCore | None] = []
        # Each node's wall clock is the virtual time plus its skew (`now` is its monotonic
        # clock): a test steps one without the other.
        self.wall_skew_s = [0.0] * len(tags)
        for index, node_tags in enumerate(tags):
            config = NodeConfig(
                name=f"n{index}", listen=(f"10.0.0.{index + 1}", 7946),
                tags=TagsConfig(**node_tags),
                replication=replication or ReplicationConfig(anti_entropy_interval_s=2.0),
                admin_keys=(self.admin[0],) if self.admin else (),
            )
            self.configs.append(config)
            self.identities.append(self.signing.new_identity(self.rng))
            self.stores.append(MemoryStore())
            self.nodes.append(self._make(index, incarnation=1))
        for node in self.nodes[1:]:
            node.join([self.configs[0].listen], self.now)
        self._collect_all()

    def _make(self, index: int, incarnation: int) -> NodeCore:
        node_id, sign = self.identities[index]
        return NodeCore(
            self.configs[index], store=self.stores[index], node_id=node_id,
            rng=random.Random(self.rng.random()), now=self.now,
            wall_ms=lambda: int((self.now + self.wall_skew_s[index]) * 1000), sign=sign,
            verify=self.signing.verify, decode_value=decode_value, incarnation=incarnation,
            merges=self.merges, content_check=self.content_check,
        )

    def index_of(self, address: tuple[str, int]) -> int:
        return next(i for i, c in enumerate(self.configs) if c.listen == tuple(address))

    def _collect(self, index: int) -> None:
        node = self.nodes[index]
        for event in node.events():
            if not isinstance(event, Send):
                self.reported.append((index, event))
            else:
                target = self.index_of(event.to)
                self.sent.append((index, target, event.message))
                if (index, target) in self.blocked or self.dropping(index, target, event.message):
                    continue
                heapq.heappush(self.queue, (self.now + LATENCY_S, next(self.sequence),
                                            node.node_id, event.to, event.message))

    def _collect_all(self) -> None:
        for index, node in enumerate(self.nodes):
            if node is not None:
                self._collect(index)

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        for _ in range(10_000_000):
            deadlines = [(n.next_deadline(), i) for i, n in enumerate(self.nodes)
                         if n is not None and n.next_deadline() is not None]
            next_timer = min(deadlines, default=(float("inf"), -1))
            next_message = self.queue[0][0] if self.queue else float("inf")
            moment = min(next_timer[0], next_message)
            if moment > end:
                self.now = end
                return
            self.now = max(self.now, moment)
            if next_message <= next_timer[0]:
                _, _, sender, to, message = heapq.heappop(self.queue)
                target = self.index_of(to)
                node = self.nodes[target]
                if node is not None:
                    node.receive(sender, message, self.now)
                    self._collect(target)
            else:
                self.nodes[next_timer[1]].handle_timer(self.now)
                self._collect(next_timer[1])
        raise AssertionError("run_for did not finish")

    def put(self, index: int, dataset: str, key: str, value: dict):
        record = self.nodes[index].put(dataset, key, encode_value(value), self.now)
        self._collect(index)
        return record

    def delete(self, index: int, dataset: str, key: str):
        record = self.nodes[index].delete(dataset, key, self.now)
        self._collect(index)
        return record

    def policy(self, index: int, key: str, value: dict):
        return self.put(index, "cluster_policy", key, value)

    def partition(self, left: list[int], right: list[int]) -> None:
        for a in left:
            for b in right:
                self.blocked |= {(a, b), (b, a)}

    def heal(self) -> None:
        self.blocked.clear()

    def crash(self, index: int) -> None:
        self.nodes[index] = None
        self.queue = [q for q in self.queue if self.index_of(q[3]) != index]
        heapq.heapify(self.queue)

    def restart(self, index: int, incarnation: int) -> None:
        self.nodes[index] = self._make(index, incarnation)
        self.nodes[index].join([self.configs[0].listen if index else self.configs[1].listen],
                               self.now)
        self._collect(index)

    def records(self, index: int, dataset: str) -> dict[str, tuple]:
        return {r.key: (r.version, r.value) for r in self.stores[index].replicated(dataset)}


def diverged_pair(replication: ReplicationConfig) -> Cluster:
    """Two members, each holding 20 `consumers` records the other lacks (pushes lost)."""
    everything = {"wep": False, "private_keys": True}
    cluster = Cluster([everything, everything], replication=replication)
    cluster.run_for(5)
    cluster.dropping = lambda sender, target, message: isinstance(message, Push)
    for i in range(20):
        cluster.put(0, "consumers", f"left{i}", {"n": i})
        cluster.put(1, "consumers", f"right{i}", {"n": i})
    cluster.run_for(1)
    assert set(cluster.records(0, "consumers")).isdisjoint(cluster.records(1, "consumers"))
    return cluster
