"""A cluster of NodeCores on one virtual clock and one virtual network: the harness itself.

Theory of operation:
1. Every simulated node runs the very `NodeCore` the agent runs, through its public API
   only (construct, `join`, `put`, `receive`, `handle_timer`, ... then `events()` and
   `next_deadline()`), exactly as the Trio shell drives it. There is no back door.
   The adapter around the core is the agent's (gossipnode/driving.py): the same value
   decoder and content check, client writes through group commit (`write_many`), and
   every message encoded to wire bytes by the peer codec and decoded from them again.
2. Everything that happens is an event in one queue (clock.py): a message arriving, a
   node's timer firing, a workload operation, a group commit. `_step` pops one and feeds
   it to one core; afterwards the core's events are carried out (Sends go into the links
   of network.py) and its timer is re-armed from `next_deadline()`. The checkers look at
   every send, every delivery and every step.
3. One `random.Random(seed)` owns all chance. At construction it deals out child seeds,
   in a fixed order, to the network, the workload, the fault drawer and every node, so
   that adding a random draw in one place does not shift every other stream.
4. A node has two clocks, as a real host does. Its monotonic clock is virtual time: the
   `now` of every input, and its deadlines are virtual times. Its wall clock is virtual
   time plus its skew, handed to the core as `wall_ms` (version stamps, tombstone ages).
   `skew` and `jump` step the wall clock only, as NTP or an operator would: no timer moves.
5. A crash drops the core object, its timer, its uncommitted writes and every link of
   it (its peers see `connection_lost`), and keeps its store: the store is the durable
   part. A restart builds a new core on the same store with a higher incarnation.
6. Links are ordered streams (network.py): a `Disconnect` resets the link with that
   peer, both directions, and both ends see `connection_lost`.
7. A core that raises out of any input is a bug (a core must turn bad input into
   events): it is recorded as a violation and the node is treated as crashed. The one
   exception is a failing disk under a replicated write: the agent stops on a store
   error (fail-stop), so the simulated node crashes without a violation.

DSL verbs (plain methods): `run_for`, `run_until_converged`, `settle` here; `partition`,
`isolate`, `heal_network`, `heal`, `crash`, `restart`, `skew`, `jump`, `leave`, `add_node`
in lifecycle_verbs.py; the client verbs `write`, `delete`, `set_policy`, `set_tags` in
commands.py; the link and disk faults `stall`, `unstall`, `slow`, `cut`,
`fail_storage`, `slow_storage` in fault_verbs.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from gossipnode.config import NodeConfig, TagsConfig
from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.events import Address
from gossipnode.driving import STORE_FAILURES, PeerCodec
from gossipnode.wire.peer_messages import PEER_MESSAGES

from .checkers import DEFAULT_OPTIONS, CheckerOptions, Checkers
from .clock import EventQueue
from .commands import ClientCommands
from .delivery import Delivery
from .fault_verbs import FaultVerbs
from .lifecycle_verbs import LifecycleVerbs
from .network import CALM, Network, NetworkFaults
from .node import SEED_NODES, SimNode, default_tags
from .payload import SimCodec

__all__ = ["SEED_NODES", "Cluster", "CoreFactory", "SimNode", "default_tags"]

# The NodeCore constructor, or anything with its signature (the tests' stand-in).
CoreFactory = Callable[..., Any]
# A run that takes more steps than this is stuck (a core re-arming a timer in the past,
# or two cores ping-ponging): it stops with a violation instead of running forever.
STEPS_MAX = 50_000_000
# A core whose timer fires this many times at one virtual instant re-arms it in the past
# without making progress; the node is stopped with a violation instead of spinning.
TIMER_SPINS_MAX = 1000


class Cluster(Delivery, LifecycleVerbs, ClientCommands, FaultVerbs):
    def __init__(
        self,
        core_factory: CoreFactory,
        *,
        nodes: int,
        seed: int,
        base_config: NodeConfig | None = None,
        tags_for: Callable[[int], TagsConfig] = default_tags,
        faults: NetworkFaults = CALM,
        checker_options: CheckerOptions = DEFAULT_OPTIONS,
    ) -> None:
        """`core_factory.message_registry`, when present, is the wire registry of the
        core's messages (a test stand-in's); NodeCore's is the agent's PEER_MESSAGES."""
        assert nodes >= 1
        self.core_factory = core_factory
        self.seed = seed
        self.random = random.Random(seed)
        self.queue = EventQueue()
        self.start_s = self.queue.now
        self.network = Network(random.Random(self.random.getrandbits(64)), self.queue,
                               self._accepts_connections, self._connection_lost, faults)
        self.workload_rng = random.Random(self.random.getrandbits(64))
        self.fault_rng = random.Random(self.random.getrandbits(64))
        self.base_config = base_config or NodeConfig()
        self.tags_for = tags_for
        registry = getattr(core_factory, "message_registry", PEER_MESSAGES)
        self.codec = SimCodec(PeerCodec(self.base_config.wire, registry))
        self.nodes: list[SimNode] = []
        self._by_address: dict[Address, SimNode] = {}
        self.membership_epoch = 0
        self.steps = 0
        self.messages = 0
        self.bytes = 0
        self.refused = 0
        self.halted = False
        self.event_counts: dict[str, int] = {}
        self.sent_by_type: dict[str, int] = {}  # messages sent, by class
        self.workload: Any = None
        self._workload_token = 0
        self.checkers = Checkers(self, checker_options)
        self.seeds: tuple[Address, ...] = ()
        for _ in range(nodes):
            self._create_node()
        self.seeds = tuple(node.address for node in self.nodes[:SEED_NODES])
        self.checkers.truth_changed()
        for node in self.nodes:
            self._start(node)

    # -- nodes ----------------------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        return round(self.queue.now - self.start_s, 6)

    def live_nodes(self) -> list[SimNode]:
        return [node for node in self.nodes if node.core is not None and not node.left]

    # -- the event loop -------------------------------------------------------------

    def _input(self, node: SimNode, action: Callable[[Any, float], Any], *,
               command: bool = False) -> Any:
        """Feed one input to a node's core, carry out its events, re-arm its timer.

        A LocalProtocolError out of a command is the core refusing it and is re-raised;
        anything raised out of any other input is a bug in the core."""
        core = node.core
        if core is None:
            return None
        try:
            result = action(core, self.queue.now)
            events = core.events()
        except LocalProtocolError:
            if command:
                raise
            self.checkers.violate("core-error", f"{node.name}: LocalProtocolError on input")
            self._drop_core(node)
            return None
        except Exception as error:
            if isinstance(error, STORE_FAILURES) and node.store.failing:
                self._count("crashes on a failing disk")  # the agent stops on a store error
            else:
                self.checkers.violate("core-error",
                                      f"{node.name}: {type(error).__name__}: {error}")
            self._drop_core(node)
            return None
        for event in events:
            self._carry_out(node, event)
        self._arm_timer(node)
        self.checkers.after_step(node)
        return result

    def _arm_timer(self, node: SimNode) -> None:
        deadline = node.core.next_deadline()
        at = deadline  # the monotonic clock is virtual time itself
        if at == node.timer_at:
            return
        node.timer_token += 1
        node.timer_at = at
        if at is not None:
            self.queue.push(at, "timer", (node.index, node.timer_token))

    def _count(self, name: str) -> None:
        self.event_counts[name] = self.event_counts.get(name, 0) + 1

    def _step(self) -> None:
        kind, payload = self.queue.pop()
        self.steps += 1
        if kind == "deliver":
            self._deliver(payload)
        elif kind == "timer":
            index, token = payload
            node = self.nodes[index]
            if node.core is not None and token == node.timer_token:
                node.timer_at = None
                if node.last_timer_at == self.queue.now:
                    node.timer_spins += 1
                    if node.timer_spins > TIMER_SPINS_MAX:
                        self.checkers.violate("liveness", f"{node.name}'s timer fired "
                                              f"{TIMER_SPINS_MAX} times at one instant")
                        self._drop_core(node)
                        return
                else:
                    node.last_timer_at, node.timer_spins = self.queue.now, 0
                self._input(node, lambda core, now: core.handle_timer(now))
        elif kind == "lost":
            index, epoch, peer = payload
            node = self.nodes[index]
            if node.core is not None and node.epoch == epoch:
                self._input(node, lambda core, now: core.connection_lost(peer, now))
        elif kind == "workload":
            if payload == self._workload_token and self.workload is not None:
                self.workload.operate()
                self.queue.push(self.queue.now + self.workload.interval_s, "workload", payload)
        elif kind in ("commit", "synced"):
            self._group_commit(kind, payload)
        elif kind == "disk":
            self.nodes[payload].store.failing = False
        elif kind == "call":  # a fault that ends later (faults.py)
            payload()
        elif kind == "exit":
            index, epoch = payload
            node = self.nodes[index]
            if node.epoch == epoch:
                self._drop_core(node)
        else:  # pragma: no cover
            raise AssertionError(kind)

    def run_for(self, seconds: float) -> None:
        """Process every event due within `seconds` of virtual time, then stop there."""
        end = self.queue.now + seconds
        while not self.halted:
            due = self.queue.next_time()
            if due is None or due > end:
                break
            if self.steps >= STEPS_MAX:
                self.checkers.violate("liveness", f"step budget of {STEPS_MAX} exhausted")
                self.halted = True
                break
            self._step()
        if self.queue.next_time() is None or self.queue.next_time() >= end:
            self.queue.advance_to(max(end, self.queue.now))

    def run_until_converged(self, bound_s: float, poll_s: float = 1.0) -> float | None:
        """Run until the checkers find the live members converged; return the virtual
        seconds it took, or None when `bound_s` passed first."""
        start = self.queue.now
        while not self.halted:
            if self.checkers.converged():
                return round(self.queue.now - start, 6)
            if self.queue.now - start >= bound_s:
                break
            self.run_for(min(poll_s, bound_s - (self.queue.now - start)))
        return None

    def settle(self, bound_s: float = 120.0) -> float | None:
        """Mid-scenario convergence: wait for it, then check acknowledged writes and start
        watching converged deletes for resurrection. A miss is a liveness violation."""
        took = self.run_until_converged(bound_s)
        if took is None:
            gaps = "; ".join(self.checkers.convergence_gaps())
            self.checkers.violate("convergence", f"no convergence within {bound_s} s: {gaps}")
        else:
            self.checkers.check_converged_state()
        return took

    # -- workload -------------------------------------------------------------------

    def start_workload(self, workload: Any) -> None:
        """Run `workload.operate()` every `workload.interval_s` until `stop_workload`."""
        self.workload = workload
        self._workload_token += 1
        self.queue.push(self.queue.now + workload.interval_s, "workload", self._workload_token)

    def stop_workload(self) -> None:
        self.workload = None
        self._workload_token += 1

    def _drop_core(self, node: SimNode) -> None:
        self._abandon_writes(node)
        node.core = None
        node.epoch += 1
        node.timer_token += 1
        node.timer_at = None
        node.crashed_at = self.queue.now
        self.membership_epoch += 1
        self.network.node_down(node.index)
