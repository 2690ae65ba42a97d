"""The membership core's rules one at a time: signatures, precedence by incarnation (against
a naive model), Lifeguard's suspicion curve, the broadcast queue, bad input, message shapes
and the sans-IO layer rule."""

from __future__ import annotations

import ast
import dataclasses
import math
import random
import typing
from pathlib import Path

import nacl.exceptions
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from membership_helpers import converged, node_id, start_cluster

import gossipnode.core.membership as membership_package
from gossipnode.config import MembershipConfig, TagsConfig
from gossipnode.core.errors import LocalProtocolError, RemoteProtocolError
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
    Ping,
    PushPull,
    Suspect,
    Updates,
    alive_signed_bytes,
    left_signed_bytes,
    messages,
    tags_from_config,
    tags_private_keys,
    tags_wep,
)
from gossipnode.core.membership.broadcast import BroadcastQueue
from gossipnode.core.membership.messages import statement_size_bytes
from gossipnode.core.membership.suspicion import Suspicion
from gossipnode.core.membership.testing import FakeSigning, VirtualCluster


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


def model_apply(state: tuple[str, int], kind: str, incarnation: int) -> tuple[str, int]:
    """SWIM's precedence, written as plainly as possible."""
    current, known = state
    if kind == "alive" and incarnation > known:
        return ALIVE, incarnation
    if kind == "suspect" and current == ALIVE and incarnation >= known:
        return SUSPECT, incarnation
    if kind == "dead" and current in (ALIVE, SUSPECT) and incarnation >= known:
        return DEAD, incarnation
    if kind == "left" and current != LEFT and incarnation >= known:
        return LEFT, incarnation
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

    observer.receive(reporter_id, Gossip(Updates(alive=(alive(0),))), 0.0)
    model = (ALIVE, 0)
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
        assert (member.state, member.incarnation) == model


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
    assert core.local_member.incarnation == 6
    assert core.local_member.state == ALIVE
    assert core.statistics()["refutations"] == 1
    changes = [event for event in core.events() if isinstance(event, MemberChanged)]
    assert changes[-1].incarnation == 6


def test_a_push_pull_saying_dead_only_makes_us_suspect():
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
    observer.receive(peer_id, Gossip(Updates(alive=(alive,))), 0.0)
    state = Updates(alive=(alive,), dead=(Dead(subject_id, 1, peer_id),))
    observer.receive(peer_id, PushPull(False, state), 0.0)
    assert observer.member(subject_id).state == SUSPECT
    observer.receive(peer_id, Gossip(Updates(dead=(Dead(subject_id, 1, peer_id),))), 0.0)
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
    assert observer.member(dead_id).state == ALIVE  # the same alive on its own is news


# ---- Lifeguard's suspicion curve ----------------------------------------------------------


def test_the_suspicion_timeout_shrinks_with_each_independent_confirmation():
    suspicion = Suspicion(1, b"a", started_at=100.0, minimum_s=2.0, maximum_s=12.0, expected=3)
    timeouts = [suspicion.timeout_s]
    for reporter in (b"b", b"b", b"c", b"a", b"d", b"e"):
        suspicion.confirm(reporter)
        timeouts.append(suspicion.timeout_s)
    assert timeouts[0] == 12.0
    assert timeouts[1] == timeouts[2]  # the same reporter twice counts once
    assert timeouts[3] < timeouts[1] < timeouts[0]
    assert timeouts[4] == timeouts[3]  # the first reporter does not confirm itself
    assert timeouts[5] == 2.0 == timeouts[6]  # expected confirmations reached: the minimum
    assert suspicion.deadline == 102.0
    expected_after_one = 12.0 - 10.0 * math.log(2) / math.log(4)
    assert timeouts[1] == pytest.approx(expected_after_one)
    alone = Suspicion(1, b"a", 0.0, 2.0, 12.0, expected=0)
    assert alone.timeout_s == 2.0


# ---- the broadcast queue ------------------------------------------------------------------


def dead(subject: int, incarnation: int = 1) -> Dead:
    return Dead(bytes([subject]) * 32, incarnation, b"\xff" * 32)


def test_the_queue_sends_each_statement_a_bounded_number_of_times():
    queue = BroadcastQueue()
    for subject in range(3):
        queue.push(dead(subject))
    sent = []
    for _ in range(20):
        batch = queue.take(bytes_max=4096, limit=4)
        sent.extend(batch.dead)
    assert len(sent) == 3 * 4
    assert not queue


def test_a_newer_statement_replaces_the_queued_one_about_the_same_member():
    queue = BroadcastQueue()
    queue.push(dead(1, incarnation=1))
    queue.take(4096, limit=4)
    queue.push(Suspect(bytes([1]) * 32, 2, b"\xff" * 32))
    batch = queue.take(4096, limit=4)
    assert batch.dead == ()
    assert [s.incarnation for s in batch.suspect] == [2]


@given(st.lists(st.integers(0, 50), min_size=1, max_size=200), st.integers(150, 2000))
def test_a_batch_stays_within_its_byte_budget_and_prefers_fresh_statements(subjects, budget):
    queue = BroadcastQueue()
    for subject in subjects:
        queue.push(dead(subject))
    batch = queue.take(budget, limit=3)
    assert sum(statement_size_bytes(s) for s in batch.dead) <= budget
    assert batch.dead  # one statement always fits in 150 bytes
    fresh = list(dict.fromkeys(reversed(subjects)))  # newest first, each subject once
    assert [s.node_id[0] for s in batch.dead] == fresh[: len(batch.dead)]


def test_piggybacked_batches_stay_within_the_configured_bytes():
    config = dataclasses.replace(MembershipConfig(), gossip_message_bytes_max=1024)
    batches = []

    def measure(message: object) -> int:
        updates = getattr(message, "updates", None)
        if updates is not None:
            parts = (updates.alive, updates.left, updates.dead, updates.suspect)
            batches.append(sum(statement_size_bytes(s) for part in parts for s in part))
        return 0

    cluster = VirtualCluster(config, seed=12, measure=measure)
    cores = [cluster.add(f"node-{i}") for i in range(30)]
    for core in cores[1:]:
        cluster.join(core, [cores[0].local_member.address])
    converged(cluster, cores, within_s=30.0)
    assert max(batches) <= 1024
    assert max(batches) > 512  # the join really filled batches


# ---- bad input ----------------------------------------------------------------------------


def test_malformed_messages_are_refused_before_anything_changes():
    cluster = VirtualCluster(MembershipConfig(), seed=13)
    core = cluster.add("node-0")
    peer = b"\x01" * 32
    good = Dead(b"\x02" * 32, 1, peer)
    bad_messages = [
        "hello",
        Gossip("not updates"),
        Gossip(Updates(dead=(good, Dead(b"short", 1, peer)))),
        Gossip(Updates(alive=(Alive(peer, "x", "h", 0, 1, (), b"s" * 64),))),
        Gossip(Updates(alive=(Alive(peer, "x", "h", 1, 1, (("b", ""), ("a", "")), b"s" * 64),))),
        Gossip(Updates(alive=(Alive(peer, "x", "h", 1, -1, (), b"s" * 64),))),
        Gossip(Updates(left=(Left(peer, 1, b"short"),))),
        Gossip(Updates(dead=(good,) * 1000)),
        Ping(1.5, peer, "h", 1, Updates()),
        Ping(1, peer, "h", 70000, Updates()),
    ]
    for message in bad_messages:
        with pytest.raises(RemoteProtocolError):
            core.receive(peer, message, 0.0)
    assert core.events() == []
    assert len(core.members()) == 1


def test_commands_refuse_bad_arguments():
    cluster = VirtualCluster(MembershipConfig(tags_bytes_max=16), seed=14)
    core = cluster.add("node-0")
    with pytest.raises(LocalProtocolError):
        core.set_tags({"version": "x" * 20}, 0.0)
    with pytest.raises(LocalProtocolError):
        core.set_tags({"wep": True}, 0.0)
    core.leave(0.0)
    assert core.next_deadline() is None  # alone: nobody to tell, so nothing keeps it up
    with pytest.raises(LocalProtocolError):
        core.set_tags({"wep": "true"}, 0.0)
    with pytest.raises(LocalProtocolError):
        core.join([("10.0.0.9", 1)], 0.0)


def test_intervals_must_be_positive():
    with pytest.raises(LocalProtocolError, match="probe_interval_s"):
        VirtualCluster(MembershipConfig(probe_interval_s=0.0), seed=15).add("node-0")


def test_tags_come_from_config_and_read_back_as_booleans():
    tags = tags_from_config(TagsConfig(wep=True, private_keys=False), version="0.1.0")
    assert tags == {"private_keys": "false", "version": "0.1.0", "wep": "true"}
    assert tags_wep(tags)
    assert not tags_private_keys(tags)
    assert not tags_wep({"wep": "yes"})  # only the string "true" is true


def test_push_pull_slows_down_in_large_clusters():
    """memberlist's pushPullScale: above 32 members a full state is swapped less often."""
    rounds = {}
    for size in (8, 40):
        cluster, cores = start_cluster(size, seed=16)
        converged(cluster, cores, within_s=30.0)
        before = sum(core.statistics()["push_pulls"] for core in cores)
        cluster.run_until(cluster.now + 300.0)
        rounds[size] = (sum(core.statistics()["push_pulls"] for core in cores) - before) / size
    # Every 30 s at 8 members: 10 rounds in 300 s; at 40 members every 60 s: 5 rounds.
    assert rounds[8] == pytest.approx(10, abs=1)
    assert rounds[40] == pytest.approx(5, abs=1)


# ---- shapes and layering ------------------------------------------------------------------

SCALARS = (int, str, bytes, bool, float)


def wire_shaped(hint: object) -> bool:
    if hint in SCALARS:
        return True
    if dataclasses.is_dataclass(hint):
        return True
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return wire_shaped(arguments[0])
        return all(a in SCALARS for a in arguments)  # a fixed pair such as (key, value)
    if origin in (typing.Union, type(int | None)):
        return all(a is type(None) or wire_shaped(a) for a in arguments)
    return False


MESSAGE_CLASSES = [name for name in messages.__all__ if isinstance(getattr(messages, name), type)]


def test_every_message_class_is_checked():
    assert set(MESSAGE_CLASSES) == {
        "Ack", "Alive", "Dead", "Gossip", "Left", "Nack", "Ping", "PingRequest", "PushPull",
        "Suspect", "Updates",
    }  # fmt: skip


@pytest.mark.parametrize("name", MESSAGE_CLASSES)
def test_messages_are_frozen_dataclasses_of_wire_types(name):
    cls = getattr(messages, name)
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen
    assert hasattr(cls, "__slots__")
    for field_name, hint in typing.get_type_hints(cls).items():
        assert wire_shaped(hint), (name, field_name, hint)


FORBIDDEN = {"time", "socket", "sqlite3", "asyncio", "trio", "nacl", "cbor2", "threading"}


def test_the_membership_core_is_sans_io():
    package = Path(membership_package.__file__).parent
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: the core or config
                    assert node.level <= 2 or node.module in ("config",), (path, node.module)
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, (path.name, name)
                assert not name.startswith("gossipnode.") or name.startswith(
                    ("gossipnode.core", "gossipnode.config")
                ), (path.name, name)
            if isinstance(node, ast.ImportFrom) and node.module == "random":
                assert [a.name for a in node.names] == ["Random"], path.name
