"""A Hypothesis state machine drives a few NodeCores through interleaved writes, message
deliveries, connection resets, timers, tag and policy changes, through the agent's adapter
(gossipnode/driving.py: wire codec, content check, group commit).

After every step: each core's digests equal digests rebuilt from its store, a member that
never opted in to private keys holds none, and node-local records stay on their node (the
oracle here is the truth the test itself set, not the core's view). On quiescence (every
queue drained, timers run on), the members converge.
"""

from __future__ import annotations

import random
from collections import deque

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gossipnode.config import NodeConfig, TagsConfig
from gossipnode.core.catalog import DATASETS, Scope
from gossipnode.core.events import Send
from gossipnode.core.merkle import Digest
from gossipnode.core.node import NodeCore
from gossipnode.core.store import MemoryStore
from gossipnode.driving import PeerCodec, commit_writes, core_arguments
from gossipnode.wire.cbor import encode_value
from simulations.clock import EPOCH_S
from simulations.node import sign_function, verify
from simulations.oracle import POLICY_DATASET, PRIVATE_KEYS_POLICY_PREFIX

from .variants import disable_eligibility_check

MEMBERS = 4
# Member 3 never opts in to private keys: it must never hold one.
NEVER_ELIGIBLE = 3
SHARED = ("consumers", "groups")
LOCAL = next(d.name for d in DATASETS if d.scope is Scope.LOCAL)
REPLICATED = tuple(d.name for d in DATASETS if d.replicated)
# Quiescence: virtual seconds of timers and deliveries, in steps; anti-entropy runs every
# 10 s by default, so this is a dozen rounds.
QUIET_S = 120.0
QUIET_STEP_S = 1.0
# Membership forms within a few probe rounds among four members.
WARM_UP_S = 5.0
# Messages delivered per virtual instant at most while draining: four members exchange a
# few dozen per round; a bound keeps a ping-pong bug from spinning forever.
DRAIN_MESSAGES_MAX = 10_000


class CoreMachine(RuleBasedStateMachine):
    @initialize(seed=st.integers(0, 2**32 - 1))
    def start(self, seed: int) -> None:
        self.now = EPOCH_S
        rng = random.Random(seed)
        self.codec = PeerCodec(NodeConfig().wire)
        self.addresses = [(f"10.1.0.{i}", 7946) for i in range(MEMBERS)]
        self.index_of = {address: i for i, address in enumerate(self.addresses)}
        self.ids = [rng.randbytes(32) for _ in range(MEMBERS)]
        self.stores = [MemoryStore() for _ in range(MEMBERS)]
        self.queues: dict[tuple[int, int], deque[bytes]] = {}
        self.cores = []
        for i in range(MEMBERS):
            config = NodeConfig(name=f"m{i}", listen=self.addresses[i],
                                tags=TagsConfig(wep=i % 2 == 0, private_keys=i != NEVER_ELIGIBLE))
            self.cores.append(NodeCore(
                config, store=self.stores[i], node_id=self.ids[i],
                rng=random.Random(rng.getrandbits(64)), now=self.now,
                wall_ms=lambda: int(self.now * 1000),  # one clock for all: no skew here
                sign=sign_function(self.ids[i]), verify=verify, incarnation=1,
                **core_arguments()))
        for i, core in enumerate(self.cores):
            core.join([a for a in self.addresses[:2] if a != self.addresses[i]], self.now)
            self._dispatch(i)
        # Warm-up, as every simulator scenario has: the membership forms before faults
        # start. (A join lost to a reset before anyone knows anyone can leave two islands,
        # {0, 3} and {1, 2}, that never merge: a limit of the membership's join, not
        # something this machine tests.)
        self._quiesce(WARM_UP_S)
        assert all(len(core.members()) == MEMBERS for core in self.cores)

    # -- driving ----------------------------------------------------------------------

    def _dispatch(self, i: int) -> None:
        for event in self.cores[i].events():
            if isinstance(event, Send):
                target = self.index_of.get(tuple(event.to))
                if target is not None:
                    queue = self.queues.setdefault((i, target), deque())
                    queue.append(self.codec.encode(event.message))

    def _deliver(self, pair: tuple[int, int]) -> None:
        source, target = pair
        message = self.codec.decode(self.queues[pair].popleft())
        self.cores[target].receive(self.ids[source], message, self.now)
        self._dispatch(target)

    def _timers(self) -> None:
        for i, core in enumerate(self.cores):
            deadline = core.next_deadline()
            if deadline is not None and deadline <= self.now:
                core.handle_timer(self.now)
                self._dispatch(i)

    def _quiesce(self, seconds: float) -> None:
        """Deliver everything in order and let timers run for `seconds` of virtual time."""
        for _ in range(int(seconds / QUIET_STEP_S)):
            for _ in range(DRAIN_MESSAGES_MAX):
                busy = self._busy()
                if not busy:
                    break
                self._deliver(busy[0])
            self.now += QUIET_STEP_S
            self._timers()

    def _busy(self) -> list[tuple[int, int]]:
        return sorted(pair for pair, queue in self.queues.items() if queue)

    # -- rules ------------------------------------------------------------------------

    @rule(member=st.integers(0, MEMBERS - 1), dataset=st.sampled_from((*SHARED, LOCAL)),
          key=st.integers(0, 3), value=st.integers(0, 9), delete=st.booleans())
    def write(self, member, dataset, key, value, delete):
        data = None if delete else encode_value({"v": value, "by": member})
        commit_writes(self.cores[member], [(dataset, f"k{key}", data)], self.now)
        self._dispatch(member)

    @rule(member=st.integers(0, MEMBERS - 1), key=st.integers(0, 3))
    def write_private_key(self, member, key):
        commit_writes(self.cores[member],
                      [("private_keys", f"u{key}", encode_value({"secret": key}))], self.now)
        self._dispatch(member)

    @precondition(lambda self: self._busy())
    @rule(data=st.data())
    def deliver(self, data):
        self._deliver(data.draw(st.sampled_from(self._busy())))

    @precondition(lambda self: self._busy())
    @rule(data=st.data())
    def reset(self, data):
        """A connection reset: both directions' queues are lost, both ends are told."""
        source, target = data.draw(st.sampled_from(self._busy()))
        for pair in ((source, target), (target, source)):
            self.queues.pop(pair, None)
        self.cores[source].connection_lost(self.addresses[target], self.now)
        self._dispatch(source)
        self.cores[target].connection_lost(self.addresses[source], self.now)
        self._dispatch(target)

    @rule(seconds=st.floats(0.01, 5.0))
    def advance(self, seconds):
        self.now += seconds
        self._timers()

    @rule(member=st.integers(0, MEMBERS - 1), wep=st.booleans())
    def set_wep_tag(self, member, wep):
        self.cores[member].set_tags({"wep": "true" if wep else "false"}, self.now)
        self._dispatch(member)

    @rule(writer=st.integers(0, MEMBERS - 1), member=st.integers(0, MEMBERS - 1),
          allow=st.booleans())
    def set_policy(self, writer, member, allow):
        key = PRIVATE_KEYS_POLICY_PREFIX + self.ids[member].hex()
        commit_writes(self.cores[writer],
                      [(POLICY_DATASET, key, encode_value({"allow": allow}))], self.now)
        self._dispatch(writer)

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def digests_match_the_store(self):
        for i, core in enumerate(self.cores):
            # The core's digests as its typed status reports them (the public API).
            reported = {d.name: d.digest for d in core.status(self.now).datasets}
            for name in REPLICATED:
                rebuilt = Digest.build(name, self.stores[i].replicated(name)).root.hex()
                assert reported[name] == rebuilt, (i, name)

    @invariant()
    def nothing_restricted_where_it_must_not_be(self):
        assert not list(self.stores[NEVER_ELIGIBLE].replicated("private_keys"))
        for i, store in enumerate(self.stores):
            for record in store.scan(LOCAL, tombstones=True):
                assert record.version.origin == self.ids[i], (i, record)

    def teardown(self):
        if not hasattr(self, "cores"):
            return
        # Quiescence: no more client input; deliver everything and let timers run.
        self._quiesce(QUIET_S)
        self.digests_match_the_store()
        for name in SHARED:
            held = [self.stores[i].scan(name, tombstones=True) for i in range(MEMBERS)]
            assert all(h == held[0] for h in held), (name, self._describe())

    def _describe(self) -> list[object]:
        """What each member sees and holds, for a failing convergence."""
        return [(i, sorted((m.name, m.state) for m in core.members()),
                 [(r.key, r.value is None, r.version.wall_ms) for r in
                  self.stores[i].scan("consumers", tombstones=True)])
                for i, core in enumerate(self.cores)]


CoreMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=25,
                                         deadline=None)
TestCoreMachine = CoreMachine.TestCase


def test_the_machine_catches_a_core_without_its_eligibility_check(monkeypatch):
    disable_eligibility_check(monkeypatch)
    with pytest.raises(AssertionError):
        run_state_machine_as_test(CoreMachine, settings=settings(
            max_examples=40, stateful_step_count=25, deadline=None, database=None,
            phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
