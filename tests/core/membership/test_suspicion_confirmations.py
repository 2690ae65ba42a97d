"""Who may confirm a suspicion (state.py rule 2): a member we hold live telling us of its own
suspicion, once. One lying member, whatever reporters it names, confirms at most once; honest
members that each tell their own suspicion still shorten the timer; a crashed member is still
declared dead by every other, well before the longest timeout.

The expected timeouts are Lifeguard's formula written out below (memberlist's suspicion.go),
not the core's own."""

from __future__ import annotations

import math
import random

import pytest

from gossipnode.config import MembershipConfig
from gossipnode.core.membership import (
    ALIVE,
    DEAD,
    SUSPECT,
    Alive,
    Dead,
    Gossip,
    Membership,
    Suspect,
    Updates,
    alive_signed_bytes,
)
from tests.core.membership.membership_helpers import converged, node_id, start_cluster
from tests.core.membership.virtual_cluster import FakeSigning

CONFIG = MembershipConfig()
# The observer, the subject, the liar and 20 witnesses: the observer counts 23 members.
WITNESSES = 20
MEMBERS = WITNESSES + 3
# How close to the expected deadline the observer is looked at (its own probe started at the
# first look cannot time out before the second: probe_timeout_s is far longer).
MARGIN_S = 0.01


def lifeguard_timeout_s(members: int, confirmations: int) -> float:
    """Lifeguard's suspicion timeout with `confirmations` beyond the first reporter, for the
    default settings: minimum 4 * log10(n + 1) probe intervals, maximum 6 times that, and
    suspicion_mult - 2 = 2 confirmations expected."""
    assert (CONFIG.suspicion_mult, CONFIG.suspicion_max_timeout_mult) == (4, 6)
    assert CONFIG.probe_interval_s == 1.0
    minimum = 4 * math.log10(members + 1)
    maximum = 6 * minimum
    expected = 2
    fraction = math.log(confirmations + 1) / math.log(expected + 1)
    return max(minimum, maximum - (maximum - minimum) * fraction)


class Observer:
    """One core that knows the subject, the liar and the witnesses (each spoke to it once),
    with no network: only what a test hands it."""

    def __init__(self, seed: int) -> None:
        signing = FakeSigning()
        self.rng = random.Random(seed)
        own_id, own_sign = signing.new_identity(self.rng)
        self.core = Membership(
            CONFIG, node_id=own_id, name="observer", address=("10.0.0.1", 1), tags={},
            incarnation=1, rng=self.rng, now=0.0, sign=own_sign, verify=signing.verify,
        )  # fmt: skip
        ids = []
        for number in range(WITNESSES + 2):
            member_id, member_sign = signing.new_identity(self.rng)
            signed = alive_signed_bytes(member_id, f"m{number}", "10.0.0.2", 100 + number, 1, ())
            alive = Alive(member_id, f"m{number}", "10.0.0.2", 100 + number, 1, (),
                          member_sign(signed))  # fmt: skip
            self.core.receive(member_id, Gossip(Updates(alive=(alive,))), 0.0)
            ids.append(member_id)
        self.subject, self.liar, *self.witnesses = ids
        assert all(self.core.member(member).state == ALIVE for member in ids)

    def told(self, sender: bytes, *reporters: bytes) -> None:
        """`sender` tells us, in one message, that each of `reporters` suspects the subject."""
        suspects = tuple(Suspect(self.subject, 1, reporter) for reporter in reporters)
        self.core.receive(sender, Gossip(Updates(suspect=suspects)), 0.0)

    def assert_dead_at(self, at: float) -> None:
        """The subject is still suspect just before `at` and dead just after."""
        assert self.core.member(self.subject).state == SUSPECT
        self.core.handle_timer(at - MARGIN_S)
        assert self.core.member(self.subject).state == SUSPECT, "declared dead too early"
        self.core.handle_timer(at + MARGIN_S)
        assert self.core.member(self.subject).state == DEAD, "not declared dead in time"


# ---- one lying member --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("named", "confirmations"),
    [
        # 20 real members named as reporters: the first starts the suspicion, and the liar's
        # word about the others confirms nothing.
        ("witnesses", 0),
        # 20 invented ids: likewise.
        ("invented", 0),
        # 19 real members and the liar itself: the liar's own suspicion counts, once.
        ("witnesses and itself", 1),
    ],
)
def test_one_message_naming_twenty_reporters_confirms_at_most_once(named, confirmations):
    observer = Observer(seed=1)
    reporters = {
        "witnesses": observer.witnesses[:20],
        "invented": [observer.rng.randbytes(32) for _ in range(20)],
        "witnesses and itself": [*observer.witnesses[:19], observer.liar],
    }[named]
    observer.told(observer.liar, *reporters)
    # Before the fix every named reporter confirmed: the timer fell to its minimum at once.
    observer.assert_dead_at(lifeguard_timeout_s(MEMBERS, confirmations))


def test_a_liar_repeating_itself_and_others_in_many_messages_still_confirms_once():
    observer = Observer(seed=2)
    observer.told(observer.witnesses[0], observer.witnesses[0])  # an honest start
    for number in range(20):
        observer.told(observer.liar, observer.liar, observer.witnesses[number])
        # A dead claim from the liar is its own word too (rule 10), and counts no more.
        observer.core.receive(
            observer.liar, Gossip(Updates(dead=(Dead(observer.subject, 1, observer.liar),))), 0.0
        )
    observer.assert_dead_at(lifeguard_timeout_s(MEMBERS, 1))


# ---- honest confirmations ------------------------------------------------------------------


@pytest.mark.parametrize("confirmers", [0, 1, 2, 5])
def test_members_that_each_tell_their_own_suspicion_shorten_the_timer(confirmers):
    observer = Observer(seed=3)
    first, *others = observer.witnesses
    observer.told(first, first)  # starts it
    for witness in others[:confirmers]:
        observer.told(witness, witness)
    # Two confirmations are all Lifeguard expects: more change nothing.
    observer.assert_dead_at(lifeguard_timeout_s(MEMBERS, min(confirmers, 2)))


def test_a_dead_claim_confirms_as_its_senders_own_word():
    observer = Observer(seed=4)
    first, second, third = observer.witnesses[:3]
    observer.told(first, first)
    for sender in (second, third):
        observer.core.receive(
            sender, Gossip(Updates(dead=(Dead(observer.subject, 1, first),))), 0.0
        )
    observer.assert_dead_at(lifeguard_timeout_s(MEMBERS, 2))


def test_a_relayed_reporter_and_a_stranger_confirm_nothing():
    observer = Observer(seed=5)
    first, second, third, fourth = observer.witnesses[:4]
    observer.told(first, first)
    observer.told(second, third)  # second relays third's word: second-hand
    observer.told(fourth, first)  # the first reporter again, relayed
    stranger = observer.rng.randbytes(32)  # not a member we hold: its word counts for nothing
    observer.told(stranger, stranger)
    observer.assert_dead_at(lifeguard_timeout_s(MEMBERS, 0))


# ---- a crashed member, in a cluster --------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_crashed_member_is_declared_dead_by_all_well_before_the_longest_timeout(seed):
    count = 20
    cluster, cores = start_cluster(count, seed=seed)
    converged(cluster, cores, within_s=10.0)
    victim, observers = cores[-1], cores[:-1]
    victim_id = node_id(victim)
    crashed_at = cluster.now
    cluster.crash(victim_id)
    assert cluster.run_until_true(
        lambda: all(core.states().get(victim_id) == DEAD for core in observers),
        crashed_at + 120.0,
    )
    suspected = [
        c.at for c in cluster.changes if c.change.node_id == victim_id and c.change.state == SUSPECT
    ]
    declared = [
        c.at for c in cluster.changes if c.change.node_id == victim_id and c.change.state == DEAD
    ]
    assert len(declared) == count - 1
    # Gossip carries the first suspicion to all within a second, so every timer starts
    # within a second of the first. Were no confirmation counted, each would then wait the
    # longest timeout (31.7 s at 20); with one, 15.0 s; with two, 5.3 s.
    assert max(declared) - min(suspected) <= 1.0 + lifeguard_timeout_s(count, 1)
    for core in observers:
        assert {core.states()[node_id(other)] for other in observers} == {ALIVE}
