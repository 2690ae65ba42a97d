"""The membership core's rules one at a time: only a subject signs its alive and left
statements, and statements take precedence by incarnation as SWIM says (against a naive
model)."""

from __future__ import annotations

import dataclasses
import random

import nacl.exceptions
import nacl.signing
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnode.config import MembershipConfig
from gossipnode.core.events import MemberChanged, PeerRefused
from gossipnode.core.membership import (
    ALIVE,
    DEAD,
    LEFT,
    SUSPECT,
    Alive,
    Dead,
    Gossip,
    Left,
    Membership,
    PushPull,
    Suspect,
    Updates,
    alive_signed_bytes,
    left_signed_bytes,
)
from tests.core.membership.membership_helpers import converged, node_id
from tests.core.membership.virtual_cluster import FakeSigning, VirtualCluster


def nacl_verify(node_id: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(node_id).verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def nacl_cluster(count: int):
    """A cluster whose members sign with real Ed25519 keys."""
    cluster = VirtualCluster(MembershipConfig(), seed=11)
    keys, cores = [], []
    for i in range(count):
        key = nacl.signing.SigningKey(bytes([i + 1]) * 32)
        keys.append(key)
        cores.append(
            cluster.add(
                f"node-{i}",
                tags={"wep": "false"},
                node_id=bytes(key.verify_key),
                sign=lambda message, key=key: key.sign(message).signature,
                verify=nacl_verify,
            )
        )
    for core in cores[1:]:
        cluster.join(core, [cores[0].local_member.address])
    converged(cluster, cores, within_s=10.0)
    return cluster, cores, keys


def test_a_forged_tag_change_is_refused():
    cluster, cores, keys = nacl_cluster(3)
    subject, forger, victim = cores
    current = victim.member(node_id(subject))
    host, port = current.address
    tags = (("wep", "true"),)
    incarnation = current.incarnation + 1
    signed = alive_signed_bytes(node_id(subject), current.name, host, port, incarnation, tags)
    forged = Alive(
        node_id(subject),
        current.name,
        host,
        port,
        incarnation,
        tags,
        keys[1].sign(signed).signature,
    )  # signed by the forger, not the subject
    victim.events()
    victim.receive(node_id(forger), Gossip(Updates(alive=(forged,))), cluster.now)
    assert victim.member(node_id(subject)).tags == {"wep": "false"}
    assert victim.member(node_id(subject)).incarnation == current.incarnation
    assert victim.events() == [
        PeerRefused(node_id(forger), "an alive statement with a bad signature")
    ]
    assert victim.statistics()["refused"] == 1
    # The same statement signed by its subject is accepted: the refusal was the signature.
    genuine = dataclasses.replace(forged, signature=keys[0].sign(signed).signature)
    victim.receive(node_id(forger), Gossip(Updates(alive=(genuine,))), cluster.now)
    assert victim.member(node_id(subject)).tags == {"wep": "true"}


def test_a_forged_leave_is_refused():
    cluster, cores, keys = nacl_cluster(3)
    subject, forger, victim = cores
    incarnation = victim.member(node_id(subject)).incarnation
    signed = left_signed_bytes(node_id(subject), incarnation)
    forged = Left(node_id(subject), incarnation, keys[1].sign(signed).signature)
    victim.receive(node_id(forger), PushPull(False, Updates(left=(forged,))), cluster.now)
    assert victim.member(node_id(subject)).state == ALIVE
    assert any(isinstance(event, PeerRefused) for event in victim.events())
    cluster.run_until(cluster.now + 10.0)
    assert all(core.member(node_id(subject)).state == ALIVE for core in cores)
    genuine = Left(node_id(subject), incarnation, keys[0].sign(signed).signature)
    victim.receive(node_id(forger), Gossip(Updates(left=(genuine,))), cluster.now)
    assert victim.member(node_id(subject)).state == LEFT


# ---- precedence by incarnation, against a naive model -------------------------------------


def model_apply(state: tuple[str, int, int], kind: str, incarnation: int) -> tuple[str, int, int]:
    """SWIM's precedence, written as plainly as possible, with claims bounded by what the
    subject signed: (state, incarnation, highest alive incarnation the subject signed).
    Another member's dead claim only makes us suspect (state.py rule 10): only our own
    suspicion timer, which no statement here runs out, declares a member dead."""
    current, known, signed = state
    if kind == "alive" and incarnation > known:
        return ALIVE, incarnation, incarnation
    if kind in ("suspect", "dead") and incarnation > signed:
        return state  # a claim above anything the subject signed is a lie
    if kind in ("suspect", "dead") and current == ALIVE and incarnation >= known:
        return SUSPECT, incarnation, signed
    if kind == "left" and current != LEFT and incarnation >= known:
        return LEFT, incarnation, signed
    return state


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["alive", "suspect", "dead", "left"]), st.integers(0, 4)),
        max_size=20,
    )
)
def test_statements_follow_swim_precedence_like_a_naive_model(statements):
    signing = FakeSigning()
    rng = random.Random(0)
    observer_id, observer_sign = signing.new_identity(rng)
    subject_id, subject_sign = signing.new_identity(rng)
    reporter_id, _ = signing.new_identity(rng)
    observer = Membership(
        MembershipConfig(),
        node_id=observer_id,
        name="observer",
        address=("10.0.0.1", 1),
        tags={},
        incarnation=1,
        rng=rng,
        now=0.0,
        sign=observer_sign,
        verify=signing.verify,
    )

    def alive(incarnation: int) -> Alive:
        signed = alive_signed_bytes(subject_id, "subject", "10.0.0.2", 2, incarnation, ())
        return Alive(subject_id, "subject", "10.0.0.2", 2, incarnation, (), subject_sign(signed))

    observer.receive(subject_id, Gossip(Updates(alive=(alive(0),))), 0.0)  # from itself
    model = (ALIVE, 0, 0)
    for kind, incarnation in statements:
        updates = {
            "alive": lambda i: Updates(alive=(alive(i),)),
            "suspect": lambda i: Updates(suspect=(Suspect(subject_id, i, reporter_id),)),
            "dead": lambda i: Updates(dead=(Dead(subject_id, i, reporter_id),)),
            "left": lambda i: Updates(
                left=(Left(subject_id, i, subject_sign(left_signed_bytes(subject_id, i))),)
            ),
        }[kind](incarnation)
        observer.receive(reporter_id, Gossip(updates), 0.0)
        model = model_apply(model, kind, incarnation)
        member = observer.member(subject_id)
        assert (member.state, member.incarnation) == model[:2]


def test_statements_about_ourselves_are_refuted_with_a_higher_incarnation():
    signing = FakeSigning()
    rng = random.Random(1)
    own_id, own_sign = signing.new_identity(rng)
    reporter_id, _ = signing.new_identity(rng)
    core = Membership(
        MembershipConfig(),
        node_id=own_id,
        name="me",
        address=("10.0.0.1", 1),
        tags={},
        incarnation=3,
        rng=rng,
        now=0.0,
        sign=own_sign,
        verify=signing.verify,
    )
    core.receive(reporter_id, Gossip(Updates(suspect=(Suspect(own_id, 2, reporter_id),))), 0.0)
    assert core.local_member.incarnation == 3  # stale: nothing to refute
    core.receive(reporter_id, Gossip(Updates(dead=(Dead(own_id, 5, reporter_id),))), 0.0)
    assert core.local_member.incarnation == 3  # we never signed 5: a lie, ignored
    assert core.statistics()["claims_over_signed"] == 1
    core.receive(reporter_id, Gossip(Updates(dead=(Dead(own_id, 3, reporter_id),))), 0.0)
    assert core.local_member.incarnation == 4
    assert core.local_member.state == ALIVE
    assert core.statistics()["refutations"] == 1
    changes = [event for event in core.events() if isinstance(event, MemberChanged)]
    assert changes[-1].incarnation == 4


def test_a_dead_claim_from_another_member_only_makes_us_suspect():
    """Another member's full state may be stale (it sat in a partition): its "dead" starts
    our own suspicion, which the subject can still refute, instead of killing at once."""
    signing = FakeSigning()
    rng = random.Random(2)
    observer_id, observer_sign = signing.new_identity(rng)
    subject_id, subject_sign = signing.new_identity(rng)
    peer_id, _ = signing.new_identity(rng)
    observer = Membership(
        MembershipConfig(),
        node_id=observer_id,
        name="observer",
        address=("10.0.0.1", 1),
        tags={},
        incarnation=1,
        rng=rng,
        now=0.0,
        sign=observer_sign,
        verify=signing.verify,
    )
    signed = alive_signed_bytes(subject_id, "subject", "10.0.0.2", 2, 1, ())
    alive = Alive(subject_id, "subject", "10.0.0.2", 2, 1, (), subject_sign(signed))
    observer.receive(subject_id, Gossip(Updates(alive=(alive,))), 0.0)
    state = Updates(alive=(alive,), dead=(Dead(subject_id, 1, peer_id),))
    observer.receive(peer_id, PushPull(False, state), 0.0)
    assert observer.member(subject_id).state == SUSPECT
    # Nor does gossip saying so (state.py rule 10): only our own suspicion timer kills.
    observer.receive(peer_id, Gossip(Updates(dead=(Dead(subject_id, 1, peer_id),))), 0.0)
    assert observer.member(subject_id).state == SUSPECT
    observer.handle_timer(60.0)  # past any suspicion timeout
    assert observer.member(subject_id).state == DEAD


def test_a_member_dead_or_left_in_a_push_pull_and_unknown_to_us_stays_unknown():
    """After one member reaped X, another that still remembers X dead must not bring it
    back as a zombie through push-pull."""
    signing = FakeSigning()
    rng = random.Random(3)
    observer_id, observer_sign = signing.new_identity(rng)
    peer_id, _ = signing.new_identity(rng)
    observer = Membership(
        MembershipConfig(), node_id=observer_id, name="observer", address=("10.0.0.1", 1),
        tags={}, incarnation=1, rng=rng, now=0.0, sign=observer_sign, verify=signing.verify,
    )  # fmt: skip
    statements = []
    for number in range(2):
        subject_id, subject_sign = signing.new_identity(rng)
        signed = alive_signed_bytes(subject_id, f"s{number}", "10.0.0.2", 2, 1, ())
        alive = Alive(subject_id, f"s{number}", "10.0.0.2", 2, 1, (), subject_sign(signed))
        statements.append((subject_id, subject_sign, alive))
    (dead_id, _, dead_alive), (left_id, left_sign, left_alive) = statements
    left = Left(left_id, 1, left_sign(left_signed_bytes(left_id, 1)))
    state = Updates(alive=(dead_alive, left_alive), left=(left,), dead=(Dead(dead_id, 1, peer_id),))
    observer.receive(peer_id, PushPull(False, state), 0.0)
    assert observer.member(dead_id) is None
    assert observer.member(left_id) is None
    observer.receive(peer_id, PushPull(False, Updates(alive=(dead_alive,))), 0.0)
    assert observer.member(dead_id) is None  # news, but second-hand: pending
    assert [pending[0] for pending in observer.pending_members()] == [dead_id]
    observer.receive(dead_id, Gossip(Updates()), 0.0)  # it speaks for itself
    assert observer.member(dead_id).state == ALIVE
