"""The virtual network: one ordered, reliable stream per pair of nodes, as the agent's
authenticated TCP connections are, and partitions between groups of nodes.

Rules:
1. The network knows nodes only by index. A pair of nodes shares one link (the agent's
   two connections, one per direction, live and die together here); each direction is
   an ordered stream with its own queue. Nothing is lost, duplicated or reordered while
   the link lives: a message arrives after the ones sent before it on that direction.
2. Timing: a direction transmits one message at a time at the link's bandwidth (a large
   message holds back the ones behind it: head-of-line blocking), and each arrives a
   latency (plus jitter, never overtaking) after it left. A slowed link divides its
   bandwidth and multiplies its latency by the slow factor.
3. A direction queues at most `LINK_QUEUE_MESSAGES_MAX` undelivered messages (the bound of
   the agent's outbound link) and at most `LINK_QUEUE_BYTES_MAX` of their encoded bytes;
   past either the link is reset (rule 5).
4. A link is dialled on the first send. A dial to a node that is down is refused after
   one round trip; a dial across a partition (either way: the handshake needs both) times
   out after `DIAL_TIMEOUT_S`. Either way the sender sees `connection_lost`, the message
   is dropped, and sends to that node are dropped for `DIAL_BACKOFF_S` (as runtime/links.py
   does).
5. A reset (drawn per message at the faults' `reset_rate`, a queue overflow, a
   `Disconnect`, a cut, or a crash of either end) drops both queues, and both ends see
   `connection_lost` one latency later; the next send dials a new link.
6. A partition blocks a direction of traffic between two groups (two-way: both). Messages
   sent into a blocked direction, or into a stalled one, wait in its queue (TCP
   retransmits) and flow in order once it is healed or unstalled; a message already in
   flight when the cut starts still arrives. `heal` removes every partition.
7. All chance comes from the one `random.Random` the cluster hands in, drawn in a fixed
   order per message (reset, then jitter), so one seed gives one run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gossipnode.driving import DIAL_BACKOFF_S, LINK_QUEUE_BYTES_MAX, LINK_QUEUE_MESSAGES_MAX

from .clock import EventQueue

__all__ = ["CALM", "DIAL_TIMEOUT_S", "STORMY", "Link", "Network", "NetworkFaults"]

# A dial whose packets vanish gives up after this long: the handshake timeout of the
# agent's default wire configuration.
DIAL_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class NetworkFaults:
    """Link timing and the chance of a connection reset."""

    # One-way delay of a LAN hop: base latency plus a uniform jitter on top.
    latency_s: float = 0.001
    jitter_s: float = 0.002
    # 1 Gbit/s: the bandwidth of one direction of one link.
    bandwidth_bytes_per_s: float = 125_000_000.0
    # Per message sent: the chance that the link's connection resets just before it.
    reset_rate: float = 0.0

    def __post_init__(self) -> None:
        assert 0.0 <= self.reset_rate <= 1.0, self.reset_rate
        for delay_s in (self.latency_s, self.jitter_s):
            assert delay_s >= 0, delay_s
        assert self.bandwidth_bytes_per_s > 0, self.bandwidth_bytes_per_s


# The liveness phase runs on a clean network: latency, jitter and bandwidth only.
CALM = NetworkFaults()
# The fault phase's default: a few hundred resets in a run of a hundred members.
STORMY = NetworkFaults(reset_rate=0.002)


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


class _Direction:
    """One direction of a link: the stream from `source` to `target`."""

    __slots__ = ("free_at", "held", "last_arrival", "queued", "queued_bytes", "source", "target")

    def __init__(self, source: int, target: int) -> None:
        self.source = source
        self.target = target
        self.queued = 0  # sent and not yet delivered, held ones included
        self.queued_bytes = 0  # their sizes
        self.free_at = -math.inf  # when the transmitter finishes the last message
        self.last_arrival = -math.inf
        self.held: list[tuple[Any, int]] = []  # (message, size) waiting for a heal


class Link:
    """The connection between nodes `a` < `b`."""

    __slots__ = ("a", "alive", "b", "backward", "forward")

    def __init__(self, a: int, b: int) -> None:
        self.a, self.b = a, b
        self.alive = True
        self.forward = _Direction(a, b)
        self.backward = _Direction(b, a)


# (source index, target index) of a message, or of a lost connection: (who learns, peer).
Lost = Callable[[int, int, float], None]


class Network:
    def __init__(self, rng: random.Random, queue: EventQueue, is_up: Callable[[int], bool],
                 lost: Lost, faults: NetworkFaults = CALM) -> None:
        """`is_up(index)`: whether a node accepts connections; `lost(index, peer, at_s)`:
        tell `index` at `at_s` that its connection with `peer` is gone."""
        self.rng = rng
        self.queue = queue
        self.faults = faults
        self._is_up = is_up
        self._lost = lost
        self._partitions: list[_Partition] = []
        self._stalled: set[tuple[int, int]] = set()
        self._slow: dict[tuple[int, int], float] = {}
        self._links: dict[tuple[int, int], Link] = {}
        self._links_of: dict[int, dict[tuple[int, int], Link]] = {}
        self._backoff_until: dict[tuple[int, int], float] = {}
        # Virtual time of the last heal, set by the cluster (the network has no clock).
        self.healed_at = 0.0
        self.sent = 0
        self.connections = 0
        self.resets = 0
        self.overflows = 0
        self.dial_failures = 0
        self.dropped_backoff = 0
        self.held = 0

    # -- faults -----------------------------------------------------------------------

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
        self._release_all()

    def calm(self) -> None:
        """Remove every stall and slowdown (partitions stay: see `heal`)."""
        self._stalled.clear()
        self._slow.clear()
        self._release_all()

    @property
    def partitioned(self) -> bool:
        return bool(self._partitions)

    def blocked(self, source: int, target: int) -> bool:
        """Whether messages from source to target wait (a partition or a stall)."""
        return (source, target) in self._stalled or self.severed(source, target)

    def severed(self, source: int, target: int) -> bool:
        """Whether a partition blocks source -> target."""
        return any(partition.blocks(source, target) for partition in self._partitions)

    def stall(self, source: int, target: int) -> None:
        """Nothing moves from source to target (a paused peer, a full receive window)
        until `unstall`; the link stays up and its queue grows."""
        self._stalled.add((source, target))

    def unstall(self, source: int, target: int) -> None:
        self._stalled.discard((source, target))
        link = self._links.get(_key(source, target))
        if link is not None:
            self._release(link, link.forward if source == link.a else link.backward)

    def slow(self, a: int, b: int, factor: float) -> None:
        """Divide the link's bandwidth and multiply its latency by `factor` (1: normal)."""
        assert factor >= 1.0, factor
        if factor == 1.0:
            self._slow.pop(_key(a, b), None)
        else:
            self._slow[_key(a, b)] = factor

    def cut(self, a: int, b: int) -> None:
        """Reset the connection between a and b, if there is one."""
        link = self._links.get(_key(a, b))
        if link is not None:
            self.reset(link)

    def node_down(self, node: int) -> None:
        """A node's process ended: every connection of it resets (its peers' kernels see
        the reset, even across a partition: the simulator does not model keepalives)."""
        for link in list(self._links_of.get(node, {}).values()):
            self.reset(link)

    def reset(self, link: Link) -> None:
        if not link.alive:
            return
        link.alive = False
        self.resets += 1
        key = (link.a, link.b)
        del self._links[key]
        del self._links_of[link.a][key]
        del self._links_of[link.b][key]
        at = self.queue.now + self.faults.latency_s
        self._lost(link.a, link.b, at)
        self._lost(link.b, link.a, at)

    # -- traffic ----------------------------------------------------------------------

    def send(self, source: int, target: int, message: Any, size: int) -> None:
        """Queue one message on the source's link to target (dialling it if needed)."""
        self.sent += 1
        now = self.queue.now
        key = _key(source, target)
        link = self._links.get(key)
        if link is None:
            link = self._dial(source, target, key, now)
            if link is None:
                return
        if self.faults.reset_rate and self.rng.random() < self.faults.reset_rate:
            self.reset(link)
            return
        direction = link.forward if source == link.a else link.backward
        if (direction.queued >= LINK_QUEUE_MESSAGES_MAX
                or direction.queued_bytes + size > LINK_QUEUE_BYTES_MAX):
            self.overflows += 1
            self.reset(link)
            return
        direction.queued += 1
        direction.queued_bytes += size
        # `blocked`, without a call when nothing is stalled or partitioned (most sends).
        if direction.held or ((self._stalled or self._partitions)
                              and self.blocked(source, target)):
            self.held += 1
            direction.held.append((message, size))
            return
        self._transmit(link, direction, message, size, now)

    def arrived(self, payload: tuple[Link, _Direction, Any, int]
                ) -> tuple[int, int, Any] | None:
        """A delivery event came up: (source, target, message), or None if its link was
        reset meanwhile."""
        link, direction, message, size = payload
        if not link.alive:
            return None
        direction.queued -= 1
        direction.queued_bytes -= size
        return direction.source, direction.target, message

    def _dial(self, source: int, target: int, key: tuple[int, int], now: float) -> Link | None:
        if now < self._backoff_until.get((source, target), -math.inf):
            self.dropped_backoff += 1
            return None
        if not self._is_up(target):
            wait_s = 2 * self.faults.latency_s  # connection refused: one round trip
        elif self.severed(source, target) or self.severed(target, source):
            wait_s = DIAL_TIMEOUT_S
        else:
            link = self._links[key] = Link(*key)
            self._links_of.setdefault(key[0], {})[key] = link
            self._links_of.setdefault(key[1], {})[key] = link
            self.connections += 1
            return link
        self.dial_failures += 1
        self._backoff_until[(source, target)] = now + wait_s + DIAL_BACKOFF_S
        self._lost(source, target, now + wait_s)
        return None

    def _transmit(self, link: Link, direction: _Direction, message: Any, size: int,
                  now: float) -> None:
        faults = self.faults
        slow = self._slow.get((link.a, link.b), 1.0) if self._slow else 1.0
        departed = max(now, direction.free_at) + size * slow / faults.bandwidth_bytes_per_s
        direction.free_at = departed
        latency_s = faults.latency_s + self.rng.random() * faults.jitter_s
        arrival = max(direction.last_arrival, departed + latency_s * slow)
        direction.last_arrival = arrival
        self.queue.push(arrival, "deliver", (link, direction, message, size))

    def _release(self, link: Link, direction: _Direction) -> None:
        if not direction.held or self.blocked(direction.source, direction.target):
            return
        held, direction.held = direction.held, []
        now = self.queue.now
        for message, size in held:
            self._transmit(link, direction, message, size, now)

    def _release_all(self) -> None:
        for link in list(self._links.values()):
            for direction in (link.forward, link.backward):
                if direction.held:
                    self._release(link, direction)


def _key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)
