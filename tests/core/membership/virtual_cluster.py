"""A virtual cluster for tests and benchmarks: many `Membership` cores, one virtual clock,
one virtual network (latency, loss, partitions, crashes, slow members). No I/O, no real
time; every run replays from its seed.

The loop is aioquic's: deliver the earliest message or fire the earliest core deadline,
whichever comes first, then collect that core's events. Senders are identified to receivers
by node id, as the secure channel would.

`FakeSigning` stands in for Ed25519 where thousands of signatures would cost real time:
each node signs with a keyed hash under its own secret key, and verification looks that key
up, so a statement is valid only if its subject made it, as with real keys.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gossipnode.config import MembershipConfig
from gossipnode.core.events import Address, MemberChanged, PeerRefused, Send
from gossipnode.core.membership.swim import Membership

__all__ = ["FakeSigning", "VirtualCluster"]


class FakeSigning:
    """Keyed-hash signatures: a stand-in for Ed25519 with the same contract."""

    def __init__(self) -> None:
        self._keys: dict[bytes, bytes] = {}

    def new_identity(self, rng: random.Random) -> tuple[bytes, Callable[[bytes], bytes]]:
        node_id = rng.randbytes(32)
        key = rng.randbytes(32)
        self._keys[node_id] = key

        def sign(message: bytes) -> bytes:
            return hashlib.blake2b(message, key=key, digest_size=64).digest()

        return node_id, sign

    def verify(self, node_id: bytes, message: bytes, signature: bytes) -> bool:
        key = self._keys.get(node_id)
        return (
            key is not None
            and hashlib.blake2b(message, key=key, digest_size=64).digest() == signature
        )


@dataclass(frozen=True, slots=True)
class Change:
    """A MemberChanged seen by `observer` at virtual time `at`."""

    at: float
    observer: bytes
    change: MemberChanged


class VirtualCluster:
    """Cores wired together. Attributes tests may set at any time:

    - `loss`: probability that a message is dropped;
    - `latency_s`: one-way delay of every message;
    - `groups`: node id -> partition group; messages between different groups are dropped;
    - `extra_delay_s`: node id -> added delay on every message it sends (a slow member);
    - `paused`: node id -> virtual time until which the core does not run at all (a
      starved process): its timers run late, at that time, and the messages sent to it
      wait until just after them (the worst case: a loop that runs its overdue timers
      before it reads the acks waiting in its sockets);
    - `measure`: message -> size in bytes, summed into `bytes_sent` (None: not measured).
    """

    def __init__(
        self,
        config: MembershipConfig,
        seed: int,
        *,
        latency_s: float = 0.001,
        loss: float = 0.0,
        record_changes: bool = True,
        measure: Callable[[object], int] | None = None,
    ) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.now = 0.0
        self.latency_s = latency_s
        self.loss = loss
        self.groups: dict[bytes, int] = {}
        self.extra_delay_s: dict[bytes, float] = {}
        self.paused: dict[bytes, float] = {}
        self.signing = FakeSigning()
        self.cores: dict[bytes, Membership] = {}
        # Each node's signing function, so that a test can restart a node with its identity.
        self.signers: dict[bytes, Callable[[bytes], bytes]] = {}
        self.crashed: set[bytes] = set()
        self.changes: list[Change] | None = [] if record_changes else None
        self.refusals: list[tuple[bytes, PeerRefused]] = []
        self.messages_sent = 0
        self.bytes_sent = 0
        self.measure = measure
        self._by_address: dict[Address, bytes] = {}
        self._messages: list[tuple[float, int, bytes, Address, object]] = []
        self._deadlines: list[tuple[float, int, bytes]] = []
        self._armed: dict[bytes, float] = {}
        self._order = itertools.count()
        self._ports = itertools.count(7000)

    # ---- membership of the virtual cluster ---------------------------------------------

    def add(
        self,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        incarnation: int = 1,
        node_id: bytes | None = None,
        sign: Callable[[bytes], bytes] | None = None,
        verify: Callable[[bytes, bytes, bytes], bool] | None = None,
        address: Address | None = None,
        admitted: Callable[[bytes], bool] | None = None,
        root_datasets: Sequence[str] = (),
    ) -> Membership:
        """Start a core (not yet joined). Without `node_id`, a FakeSigning identity."""
        if node_id is None:
            node_id, sign = self.signing.new_identity(self.rng)
        assert sign is not None
        address = address or ("10.0.0.1", next(self._ports))
        core = Membership(
            self.config,
            node_id=node_id,
            name=name,
            address=address,
            tags=tags or {},
            incarnation=incarnation,
            rng=random.Random(self.rng.getrandbits(64)),
            now=self.now,
            sign=sign,
            verify=verify or self.signing.verify,
            root_datasets=root_datasets,
            **({} if admitted is None else {"admitted": admitted}),
        )
        self.cores[node_id] = core
        self.signers[node_id] = sign
        self.crashed.discard(node_id)
        self._by_address[address] = node_id
        self._arm(node_id)
        return core

    def crash(self, node_id: bytes) -> None:
        """Stop a core at once: no timers, and messages to it are lost."""
        self.crashed.add(node_id)
        self._armed.pop(node_id, None)

    def join(self, core: Membership, seeds: Sequence[Address]) -> None:
        core.join(seeds, self.now)
        self._collect(core.local_member.node_id)

    def call(self, core: Membership, command: str, *args: object) -> None:
        """Run a command (`leave`, `set_tags`) on `core` now and carry out its events."""
        getattr(core, command)(*args, self.now)
        self._collect(core.local_member.node_id)

    def deliver(self, core: Membership, sender: bytes, message: object) -> None:
        """Hand `core` a message from `sender` now (an outsider's, in attack tests) and
        carry out its events."""
        core.receive(sender, message, self.now)
        self._collect(core.local_member.node_id)

    # ---- running ------------------------------------------------------------------------

    def step(self) -> bool:
        """Deliver the earliest message or fire the earliest deadline; False if idle."""
        message_at = self._messages[0][0] if self._messages else math.inf
        deadline_at, node_id = self._next_deadline()
        if message_at == math.inf and deadline_at == math.inf:
            return False
        if message_at <= deadline_at:
            at, _, sender, to, message = heapq.heappop(self._messages)
            self.now = max(self.now, at)
            receiver = self._by_address.get(to)
            if receiver is None or receiver in self.crashed:
                return True
            if self.groups.get(sender, 0) != self.groups.get(receiver, 0):
                return True
            resumes_at = self.paused.get(receiver, -math.inf)
            if resumes_at >= self.now:  # after its overdue timers (see `paused`)
                heapq.heappush(self._messages,
                               (resumes_at + 1e-6, next(self._order), sender, to, message))
                return True
            self.cores[receiver].receive(sender, message, self.now)
            self._collect(receiver)
        else:
            heapq.heappop(self._deadlines)
            self.now = max(self.now, deadline_at)
            del self._armed[node_id]
            resumes_at = self.paused.get(node_id, -math.inf)
            if resumes_at > self.now:  # starved: its timers run when it resumes
                self._armed[node_id] = resumes_at
                heapq.heappush(self._deadlines, (resumes_at, next(self._order), node_id))
                return True
            self.cores[node_id].handle_timer(self.now)
            self._collect(node_id)
        return True

    def run_until(self, until: float) -> None:
        """Run everything due up to virtual time `until`, then stop the clock there."""
        while (
            min(self._messages[0][0] if self._messages else math.inf, self._next_deadline()[0])
            <= until
        ):
            self.step()
        self.now = max(self.now, until)

    def run_until_true(
        self, condition: Callable[[], bool], until: float, check_every_s: float = 0.1
    ) -> bool:
        """Run until `condition()` holds (checked every `check_every_s` virtual seconds) or
        `until`; True if it held."""
        while self.now < until:
            if condition():
                return True
            self.run_until(min(self.now + check_every_s, until))
        return condition()

    # ---- queries ------------------------------------------------------------------------

    def live(self) -> list[Membership]:
        return [core for node_id, core in self.cores.items() if node_id not in self.crashed]

    def all_see(self, expected: Mapping[bytes, str], among: Sequence[Membership]) -> bool:
        """Every core in `among` holds exactly the states in `expected` for those ids."""
        for core in among:
            states = core.states()
            if any(states.get(node_id) != state for node_id, state in expected.items()):
                return False
        return True

    # ---- internals ----------------------------------------------------------------------

    def _next_deadline(self) -> tuple[float, bytes]:
        while self._deadlines:
            at, _, node_id = self._deadlines[0]
            if self._armed.get(node_id) == at:
                return at, node_id
            heapq.heappop(self._deadlines)
        return math.inf, b""

    def _arm(self, node_id: bytes) -> None:
        if node_id in self.crashed:
            return
        at = self.cores[node_id].next_deadline()
        if at is None:
            self._armed.pop(node_id, None)
        elif self._armed.get(node_id) != at:
            self._armed[node_id] = at
            heapq.heappush(self._deadlines, (at, next(self._order), node_id))

    def _collect(self, node_id: bytes) -> None:
        for event in self.cores[node_id].events():
            if isinstance(event, Send):
                self.messages_sent += 1
                if self.measure is not None:
                    self.bytes_sent += self.measure(event.message)
                if self.loss and self.rng.random() < self.loss:
                    continue
                at = self.now + self.latency_s + self.extra_delay_s.get(node_id, 0.0)
                heapq.heappush(
                    self._messages, (at, next(self._order), node_id, event.to, event.message)
                )
            elif isinstance(event, MemberChanged):
                if self.changes is not None:
                    self.changes.append(Change(self.now, node_id, event))
            elif isinstance(event, PeerRefused):
                self.refusals.append((node_id, event))
        self._arm(node_id)
