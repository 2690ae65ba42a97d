"""A lying member against the staggered sessions (anti_entropy.py rules 7 and 8, sync.py
rule 7, staggering.py, session_queue.py): a peer that opens sessions and stalls them on
purpose (never finishes, keeps them alive with empty turns, crosses the victim's openings,
withdraws and opens again and again) holds the other members' sessions over the same dataset
back for at most `WAIT_S_MAX` per wait and `WITHDRAWALS_MAX` withdrawals; every honest
session completes and the honest members converge; and the liar's own sessions still end at
`session_timeout_s` and after `rounds_max` rounds, whatever it sends. Virtual time throughout.
"""

from __future__ import annotations

import random

from gossipnode.config import ReplicationConfig
from gossipnode.core.events import SyncCompleted
from gossipnode.core.reconcile_messages import (
    ROOT_BYTES,
    SALT_BYTES,
    ReconcileAbort,
    ReconcileOpen,
    ReconcileTurn,
)
from gossipnode.core.replication import Push
from gossipnode.core.session_queue import WAIT_S_MAX
from gossipnode.core.staggering import WITHDRAWALS_MAX, WITHDRAWN
from tests.core.node_harness import LATENCY_S, Cluster

ALL = {"wep": False, "private_keys": True}
# No regular round within the test: every session is the test's or the liar's doing.
QUIET = ReplicationConfig(anti_entropy_interval_s=3600.0, tombstone_grace_s=7200.0)
RECONCILE = (ReconcileOpen, ReconcileTurn, ReconcileAbort)
DATASET = "consumers"
TICK_S = 0.25
VICTIM, HONEST, LIAR = 0, (1, 2), 3


class Liar:
    """Member LIAR's reconciliation, played by hand. Its own core still runs membership (so
    it stays alive in every view), but none of its reconciliation leaves it, and what the
    victim sends it is read here instead. At every tick it keeps `sessions` of its own open
    with the victim over DATASET, each kept alive with an empty `more=True` turn per second;
    every `churn_s` it aborts its oldest and opens a new one; and it answers every opening
    of the victim's with a crossing opening of its own, never with a turn."""

    def __init__(self, cluster: Cluster, *, sessions: int = 2, churn_s: float = 3.0) -> None:
        self.cluster = cluster
        self.rng = random.Random(7)
        self.sessions_max, self.churn_s = sessions, churn_s
        self.open: dict[int, float] = {}  # session id -> opened at
        self.opened_at: dict[int, float] = {}  # every session it opened, ended or not
        self.answered: set[int] = set()
        self.inbox: list[object] = []
        self.last_churn = self.last_keepalive = cluster.now
        self.opened = self.aborted = self.crossed = 0

    def send(self, message: object) -> None:
        cluster = self.cluster
        cluster.nodes[VICTIM].receive(cluster.nodes[LIAR].node_id, message, cluster.now)
        cluster._collect(VICTIM)

    def opening(self) -> ReconcileOpen:
        session = self.rng.getrandbits(63)
        self.open[session] = self.opened_at[session] = self.cluster.now
        self.opened += 1
        return ReconcileOpen(session, DATASET, self.rng.randbytes(SALT_BYTES),
                             self.rng.randbytes(ROOT_BYTES), 1000)

    def act(self) -> None:
        now = self.cluster.now
        inbox, self.inbox = self.inbox, []
        for message in inbox:
            if isinstance(message, ReconcileOpen):  # cross it
                self.crossed += 1
                self.send(self.opening())
            elif isinstance(message, ReconcileTurn) and message.session in self.open:
                self.answered.add(message.session)
            elif isinstance(message, ReconcileAbort):
                self.open.pop(message.session, None)
        if now - self.last_churn >= self.churn_s and self.open:
            oldest = min(self.open, key=self.open.get)
            del self.open[oldest]
            self.aborted += 1
            self.send(ReconcileAbort(oldest, "changed my mind"))
            self.last_churn = now
        while len(self.open) < self.sessions_max:
            self.send(self.opening())
        if now - self.last_keepalive >= 1.0:
            self.last_keepalive = now
            for session in sorted(self.answered & set(self.open)):
                self.send(ReconcileTurn(session, 2, True, b"", ()))

    def pounce(self) -> None:
        """Abort the oldest session and open a fresh one, at once."""
        if self.open:
            oldest = min(self.open, key=self.open.get)
            del self.open[oldest]
            self.aborted += 1
            self.send(ReconcileAbort(oldest, "changed my mind"))
        self.send(self.opening())


def hostile_cluster():
    """Four members; the honest ones (1, 2) each hold 20 records the victim (0) lacks and the
    victim 20 of its own; a log of every message sent, with its time."""
    cluster = Cluster([ALL] * 4, replication=QUIET)
    cluster.run_for(5)
    log: list[tuple[float, int, int, object]] = []
    liar = Liar(cluster)

    def dropping(sender, target, message):
        log.append((cluster.now, sender, target, message))
        if isinstance(message, RECONCILE) and target == LIAR:
            liar.inbox.append(message)
            return True
        return isinstance(message, Push) or (isinstance(message, RECONCILE) and sender == LIAR)

    cluster.dropping = dropping
    for n in range(20):
        for index in (VICTIM, *HONEST):
            cluster.put(index, DATASET, f"k{index}-{n}", {"n": n})
    cluster.run_for(1)
    return cluster, liar, log


def run(cluster: Cluster, liar: Liar, seconds: float) -> None:
    """Run for `seconds`, the liar acting at every tick and, the worst it can do, opening a
    fresh session at the very instant a session waiting at the victim goes (it would withdraw
    a session the victim just opened with an honest member)."""
    end = cluster.now + seconds
    queue = cluster.nodes[VICTIM].anti_entropy._queue
    while cluster.now < end - 1e-9:
        liar.act()
        step = min(TICK_S, end - cluster.now)
        due = queue.next_deadline()
        if due is not None and cluster.now < due <= cluster.now + step:
            cluster.run_for(due - cluster.now + 1e-9)
            liar.pounce()
        else:
            cluster.run_for(step)


def held(cluster: Cluster) -> list[set[str]]:
    return [set(cluster.records(i, DATASET)) for i in (VICTIM, *HONEST)]


def exchanged(cluster: Cluster) -> bool:
    """Every honest member's session with the victim moved both ways."""
    victim, *honest = held(cluster)
    return len(victim) == 60 and all(h >= {k for k in victim if k.startswith(("k0-", f"k{i}-"))}
                                     for i, h in zip(HONEST, honest, strict=True))


def converged(cluster: Cluster) -> bool:
    victim, *honest = held(cluster)
    return len(victim) == 60 and all(h == victim for h in honest)


def test_a_liar_holds_the_victims_own_sessions_back_at_most_wait_s_max_per_withdrawal():
    cluster, liar, log = hostile_cluster()
    run(cluster, liar, 2)  # the liar's sessions are running and moving
    assert liar.answered
    victim = cluster.nodes[VICTIM]
    ids = [node.node_id for node in cluster.nodes]
    # Each wait is at most WAIT_S_MAX, and each withdrawal costs one more wait.
    limit = (WITHDRAWALS_MAX + 1) * WAIT_S_MAX + 1.0
    for check in (exchanged, converged):  # twice: the second round spreads what the first brought
        start, mark = cluster.now, len(cluster.reported)
        for honest in HONEST:  # the victim's rounds with the honest members (staggered)
            victim.sync._start_sessions(ids[honest], (DATASET,), cluster.now)
            cluster._collect(VICTIM)
        while not check(cluster) and cluster.now - start < limit:
            run(cluster, liar, TICK_S)
        assert check(cluster), cluster.now - start
        for honest in HONEST:
            sent = [(t, m) for t, a, b, m in log if (a, b) == (VICTIM, honest) and t >= start
                    and isinstance(m, ReconcileOpen | ReconcileAbort)]
            openings = [t for t, m in sent if isinstance(m, ReconcileOpen)]
            withdrawals = [t for t, m in sent
                           if isinstance(m, ReconcileAbort) and m.reason == WITHDRAWN]
            # The liar pounced at every start, so every session was withdrawn, up to the limit.
            assert len(withdrawals) == WITHDRAWALS_MAX
            for began in [start, *withdrawals]:  # from the round or a withdrawal to the opening
                assert min(t for t in openings if t >= began) - began <= WAIT_S_MAX + 1e-6
            ends = [e for i, e in cluster.reported[mark:] if i == VICTIM
                    and isinstance(e, SyncCompleted) and e.peer == ids[honest]]
            assert [e.failure for e in ends] == [WITHDRAWN] * WITHDRAWALS_MAX + [None]
    run(cluster, liar, 5)  # the liar goes on; nothing honest is undone
    assert converged(cluster)
    assert liar.opened > 10 and liar.aborted > 5 and liar.answered


def test_a_liar_holds_an_honest_members_opening_back_at_most_wait_s_max():
    cluster, liar, log = hostile_cluster()
    run(cluster, liar, 2)
    assert liar.answered
    ids = [node.node_id for node in cluster.nodes]
    start, mark = cluster.now, len(cluster.reported)
    for honest in HONEST:  # the honest members open with the victim
        cluster.nodes[honest].sync._start_sessions(ids[VICTIM], (DATASET,), cluster.now)
        cluster._collect(honest)
    run(cluster, liar, WAIT_S_MAX + 1.0)
    assert exchanged(cluster)
    for honest in HONEST:
        openings = [(t, m.session) for t, a, b, m in log if (a, b) == (honest, VICTIM)
                    and t >= start and isinstance(m, ReconcileOpen)]
        assert len(openings) == 1
        for opened, session in openings:
            answers = [t for t, a, b, m in log if (a, b) == (VICTIM, honest)
                       and isinstance(m, ReconcileTurn | ReconcileAbort) and m.session == session]
            # It waited (the liar's sessions moved) but no longer than WAIT_S_MAX.
            assert 0 < answers[0] - (opened + LATENCY_S) <= WAIT_S_MAX + 1e-6
        ends = [e for i, e in cluster.reported[mark:] if i == honest
                and isinstance(e, SyncCompleted) and e.peer == ids[VICTIM]]
        assert [e.failure for e in ends] == [None], ends


def test_a_liars_session_ends_at_its_stall_timeout_whatever_it_sends():
    cluster, liar, log = hostile_cluster()
    liar.churn_s = 10_000.0  # never withdraws: keeps its sessions alive with empty turns
    timeout = cluster.configs[VICTIM].reconcile.session_timeout_s
    run(cluster, liar, 2 * timeout)
    stalled = [(t, m.session) for t, a, b, m in log if (a, b) == (VICTIM, LIAR)
               and isinstance(m, ReconcileAbort) and "stalled" in m.reason]
    assert len(stalled) >= 2 and {s for _, s in stalled} <= liar.answered
    # Each ended exactly its stall timeout after it was opened: the empty turns it was sent
    # every second never moved the deadline.
    for ended, session in stalled:
        assert abs(ended - liar.opened_at[session] - timeout) < 1e-6


def test_a_liars_session_ends_after_rounds_max_however_fast_it_sends_empty_turns():
    cluster, liar, log = hostile_cluster()
    rounds_max = cluster.configs[VICTIM].reconcile.rounds_max
    liar.sessions_max, liar.churn_s = 1, 10_000.0
    run(cluster, liar, 1)
    (session,) = liar.answered
    mark = len(log)
    for _ in range(2 * rounds_max):  # all at one instant, no time passing
        liar.send(ReconcileTurn(session, 2, True, b"", ()))
    aborts = [m for t, a, b, m in log[mark:] if (a, b) == (VICTIM, LIAR)
              and isinstance(m, ReconcileAbort) and m.session == session]
    assert len(aborts) == 1 and "rounds" in aborts[0].reason, aborts
