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

DSL verbs (plain methods): `partition`, `isolate`, `heal_network`, `heal`, `crash`,
`restart`, `skew`, `jump`, `leave`, `add_node`, `run_for`, `run_until_converged`,
`settle` here; the client verbs `write`, `delete`, `set_policy`, `set_tags` in
commands.py; the link and disk faults `stall`, `unstall`, `slow`, `cut`,
`fail_storage`, `slow_storage` in fault_verbs.py.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

from gossipnode.config import NodeConfig, TagsConfig
from gossipnode.core.errors import LocalProtocolError, RemoteProtocolError
from gossipnode.core.events import Address, Disconnect, Send
from gossipnode.core.records import Record
from gossipnode.driving import STORE_FAILURES, PeerCodec, core_arguments
from gossipnode.wire.peer_messages import PEER_MESSAGES

from .checkers import DEFAULT_OPTIONS, CheckerOptions, Checkers
from .clock import EventQueue
from .commands import ClientCommands
from .fault_verbs import FaultVerbs
from .network import CALM, Network, NetworkFaults
from .node import PORT, SEED_NODES, SYNC_S, SimNode, default_tags, sign_function, tag_map, verify
from .payload import SimCodec, records_in
from .tracked_store import TrackedStore

__all__ = ["SEED_NODES", "Cluster", "CoreFactory", "SimNode", "default_tags"]

# The NodeCore constructor, or anything with its signature (the tests' stand-in).
CoreFactory = Callable[..., Any]
# A leaving node keeps running this long after `leave`, to send its farewell.
LEAVE_LINGER_S = 2.0
# A run that takes more steps than this is stuck (a core re-arming a timer in the past,
# or two cores ping-ponging): it stops with a violation instead of running forever.
STEPS_MAX = 50_000_000
# A core whose timer fires this many times at one virtual instant re-arms it in the past
# without making progress; the node is stopped with a violation instead of spinning.
TIMER_SPINS_MAX = 1000


class Cluster(ClientCommands, FaultVerbs):
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

    def _create_node(self) -> SimNode:
        index = len(self.nodes)
        name = f"n{index:04d}"
        address = (f"10.0.{index // 256}.{index % 256}", PORT)
        tags = self.tags_for(index)
        config = dataclasses.replace(self.base_config, name=name, listen=address, tags=tags)
        node = SimNode(
            index=index,
            name=name,
            node_id=self.random.randbytes(32),
            address=address,
            config=config,
            store=TrackedStore(index, self.checkers),
            rng=random.Random(self.random.getrandbits(64)),
            tags=tag_map(tags),
            created_at=self.queue.now,
        )
        self.nodes.append(node)
        self._by_address[address] = node
        return node

    def _start(self, node: SimNode) -> None:
        seeds = [address for address in self.seeds if address != node.address]
        try:
            node.core = self.core_factory(
                node.config, store=node.store, node_id=node.node_id, rng=node.rng,
                now=self.queue.now, wall_ms=lambda: self._wall_ms(node),
                sign=sign_function(node.node_id), verify=verify, incarnation=node.incarnation,
                **core_arguments(),
            )
        except Exception as error:
            self.checkers.violate("core-error", f"{node.name} failed to start: "
                                  f"{type(error).__name__}: {error}")
            return
        node.crashed_at = None
        node.started_at = self.queue.now
        self._input(node, lambda core, now: core.join(seeds, now))

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

    def _carry_out(self, node: SimNode, event: object) -> None:
        if isinstance(event, Send):
            try:
                data = self.codec.encode(event.message)
            except LocalProtocolError as error:
                self.checkers.violate("wire", f"{node.name} sent a message the codec "
                                      f"refuses: {error}")
                return
            records: list[Record] = []
            records_in(event.message, records)
            self.messages += 1
            self.bytes += len(data)
            target = self._by_address.get(event.to)
            verdict = self.checkers.on_send(node, target, records)
            if target is None:
                self._count("unroutable")
                return
            self.network.send(node.index, target.index, (data, verdict), len(data))
        elif isinstance(event, Disconnect):
            self._count("Disconnect")
            target = self._by_address.get(event.to)
            if target is not None:
                self.network.cut(node.index, target.index)
        else:
            self._count(type(event).__name__)

    def _accepts_connections(self, index: int) -> bool:
        return self.nodes[index].core is not None

    def _connection_lost(self, index: int, peer: int, at_s: float) -> None:
        self.queue.push(at_s, "lost", (index, self.nodes[index].epoch, self.nodes[peer].address))

    def _count(self, name: str) -> None:
        self.event_counts[name] = self.event_counts.get(name, 0) + 1

    def _step(self) -> None:
        kind, payload = self.queue.pop()
        self.steps += 1
        if kind == "deliver":
            arrived = self.network.arrived(payload)
            if arrived is None:
                self._count("dropped: connection reset")
                return
            source_index, target_index, (data, verdict) = arrived
            target, source = self.nodes[target_index], self.nodes[source_index]
            try:
                message = self.codec.decode(data)
            except RemoteProtocolError as error:
                # The agent's transport drops a connection whose bytes do not decode; the
                # sender's encoder let them out, which is a bug on our side of the wire.
                self.checkers.violate("wire", f"{target.name} cannot decode a message "
                                      f"from {source.name}: {error}")
                self.network.cut(source_index, target_index)
                return
            self.checkers.on_deliver(source.name, target, verdict)
            sender = source.node_id
            self._input(target, lambda core, now: core.receive(sender, message, now))
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

    # -- faults ---------------------------------------------------------------------

    def partition(self, a_group: Sequence[SimNode], b_group: Sequence[SimNode] | None = None,
                  *, oneway: bool = False) -> None:
        self.network.partition([n.index for n in a_group],
                               None if b_group is None else [n.index for n in b_group],
                               oneway=oneway)

    def isolate(self, node: SimNode) -> None:
        self.network.isolate(node.index)

    def heal_network(self) -> None:
        """Remove every partition (the fault phase goes on)."""
        self.network.heal()
        self.network.healed_at = self.queue.now

    def heal(self) -> None:
        """End the fault phase: heal every partition, calm the network, stop the
        workload, restart every crashed node and reseed every quarantined one (what an
        operator would do). Clock skews stay."""
        self.stop_workload()
        self.network.calm()
        self.heal_network()
        self.network.faults = CALM
        for node in self.nodes:
            node.store.failing = False
            node.sync_s = SYNC_S
        for node in self.nodes:
            if node.core is None and not node.left:
                self.restart(node)
        for node in self.live_nodes():
            self.reseed_if_quarantined(node)

    def _drop_core(self, node: SimNode) -> None:
        self._abandon_writes(node)
        node.core = None
        node.epoch += 1
        node.timer_token += 1
        node.timer_at = None
        node.crashed_at = self.queue.now
        self.membership_epoch += 1
        self.network.node_down(node.index)

    def crash(self, node: SimNode) -> None:
        """kill -9: the core and everything in flight to or from it are gone."""
        if node.core is not None:
            self._drop_core(node)

    def restart(self, node: SimNode) -> None:
        assert node.core is None, node.name
        assert not node.left, node.name
        down_s = self.queue.now - (node.crashed_at or self.queue.now)
        node.incarnation += 1
        self.membership_epoch += 1
        self._start(node)
        if node.core is not None:
            self.checkers.on_restart(node, down_s, node.config.replication.tombstone_grace_s)

    def skew(self, node: SimNode, seconds: float) -> None:
        """Set the node's wall clock to run `seconds` ahead of virtual time (behind if < 0).
        Its monotonic clock, and so every timer of it, stays where it is."""
        node.skew_s = seconds

    def jump(self, node: SimNode, seconds: float) -> None:
        """Step the node's wall clock by `seconds` at once (an NTP step, a manual set)."""
        self.skew(node, node.skew_s + seconds)

    def _wall_ms(self, node: SimNode) -> int:
        """The node's wall clock in Unix milliseconds: virtual time plus its skew."""
        return int((self.queue.now + node.skew_s) * 1000)

    def leave(self, node: SimNode) -> None:
        """A graceful leave: the node says goodbye, lingers briefly, and exits for good."""
        if node.core is None or node.left:
            return
        node.left = True
        self.checkers.truth_changed()
        self._command(node, lambda core, now: core.leave(now))
        self.queue.push(self.queue.now + LEAVE_LINGER_S, "exit", (node.index, node.epoch))

    def add_node(self, tags: TagsConfig | None = None) -> SimNode:
        """A new member joins through the seeds."""
        node = self._create_node()
        if tags is not None:
            node.config = dataclasses.replace(node.config, tags=tags)
            node.tags = tag_map(tags)
        self.checkers.truth_changed()
        self._start(node)
        return node
