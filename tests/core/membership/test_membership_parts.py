"""The membership core's parts: Lifeguard's suspicion curve, the broadcast queue, bad input,
commands and settings, message shapes and the sans-IO layer rule."""

from __future__ import annotations

import ast
import dataclasses
import math
import random
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gossipnode.core.membership as membership_package
from gossipnode.config import MembershipConfig, TagsConfig
from gossipnode.core.errors import LocalProtocolError, RemoteProtocolError
from gossipnode.core.membership import (
    Alive,
    Dead,
    Gossip,
    Left,
    Ping,
    Suspect,
    Updates,
    messages,
    tags_from_config,
    tags_private_keys,
    tags_wep,
)
from gossipnode.core.membership import pending as pending_module
from gossipnode.core.membership.broadcast import BroadcastQueue
from gossipnode.core.membership.messages import statement_size_bytes
from gossipnode.core.membership.pending import PendingMembers
from gossipnode.core.membership.suspicion import Suspicion
from tests.core.membership.membership_helpers import converged, start_cluster
from tests.core.membership.virtual_cluster import VirtualCluster

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


def test_the_queue_sends_each_statement_a_bounded_number_of_times_and_dead_claims_twice_that():
    queue = BroadcastQueue()
    for subject in range(3):
        queue.push(dead(subject))
        queue.push(Suspect(bytes([10 + subject]) * 32, 1, b"\xff" * 32))
    sent = []
    for _ in range(40):
        batch = queue.take(bytes_max=4096, limit=4)
        sent.extend((*batch.dead, *batch.suspect))
    assert sum(isinstance(statement, Suspect) for statement in sent) == 3 * 4
    # Our dead claims confirm others' suspicions only first-hand (broadcast.py rule 2).
    assert sum(isinstance(statement, Dead) for statement in sent) == 3 * 8
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


# (kind, subject) to push, or None for a take of everything queued.
_QUEUE_OPS = st.lists(st.one_of(st.none(), st.tuples(st.sampled_from("alsd"), st.integers(0, 5))),
                      max_size=60)


@given(_QUEUE_OPS, st.integers(1, 3))
def test_the_queue_has_fresh_news_while_an_unsent_alive_or_left_statement_is_queued(ops, limit):
    queue = BroadcastQueue()
    unsent: dict[int, str] = {}  # the model: subject -> kind of its statement never sent
    for op in ops:
        if op is None:
            queue.take(10**9, limit=limit)  # a budget every queued statement fits in
            unsent.clear()
        else:
            kind, subject = op
            node_id = bytes([subject]) * 32
            statement = {
                "a": Alive(node_id, f"n{subject}", "10.0.0.1", 7946, 1, (), b"\x01" * 64),
                "l": Left(node_id, 1, b"\x01" * 64),
                "s": Suspect(node_id, 1, b"\xff" * 32),
                "d": dead(subject),
            }[kind]
            queue.push(statement)
            unsent[subject] = kind
        assert queue.fresh == any(kind in "al" for kind in unsent.values())


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
        "Ack", "Alive", "DatasetRoot", "Dead", "Gossip", "Left", "Nack", "Ping", "PingRequest",
        "PushPull", "Suspect", "Updates",
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


@pytest.mark.parametrize("compared_max", [0, 8, 10**9])
@pytest.mark.parametrize(("capacity", "source_count"), [(8, 4), (48, 40)])
def test_pending_evicts_the_oldest_entry_of_the_source_holding_most(
        capacity, source_count, compared_max, monkeypatch):
    """Rule 3 of pending.py against a plain model: the entries in arrival order, and an
    eviction scans them for the first whose source holds the most. Few sources (the
    largest is one or a few of them) and many (dozens tie for the largest); each of the
    eviction's two ways forced (0: always the walk, 10**9: always the comparison)."""
    monkeypatch.setattr(pending_module, "TIED_SOURCES_COMPARED_MAX", compared_max)
    rng = random.Random(11)
    pending = PendingMembers(capacity=capacity, expiry_s=30.0)
    model: list[tuple[bytes, bytes]] = []  # (node id, source), oldest first
    sources = [bytes([s]) * 32 for s in range(source_count)]
    for step in range(2000):
        if model and rng.random() < 0.2:
            node_id = rng.choice(model)[0]
            assert pending.pop(node_id) is not None
            model = [item for item in model if item[0] != node_id]
            continue
        node_id = rng.randbytes(32)
        # Skewed sources, so that ties and changes of the largest source both occur.
        source = sources[min(source_count - 1, int(rng.expovariate(4.0 / source_count)))]
        alive = Alive(node_id, f"m{step}", "10.0.0.1", 7946, 1, (), bytes(64))
        expected = None
        if len(model) >= capacity:
            counts = {s: sum(1 for _, held in model if held == s) for s in sources}
            most = max(counts.values())
            expected = next(n for n, held in model if counts[held] == most)
            model = [item for item in model if item[0] != expected]
        model.append((node_id, source))
        assert pending.offer(alive, source, float(step)) == (True, expected)
        assert list(pending.entries) == [n for n, _ in model]


def test_gossip_targets_are_drawn_uniformly_without_walking_every_reachable_member():
    # dissemination.py: a round draws `gossip_fanout` members by index, O(fanout); a list of
    # every reachable member per round cost O(n) five times a second on every member.
    from collections import Counter

    from tests.core.membership.membership_helpers import converged, node_id, start_cluster

    cluster, cores = start_cluster(12, seed=31)
    converged(cluster, cores, within_s=20.0)
    dissemination = cores[0]._dissemination
    reachable = dissemination._table.reachable

    class NotWalked(list):
        def __iter__(self):
            raise AssertionError("a gossip round walked every reachable member")

    reachable.items = NotWalked(reachable.items)
    source = node_id(cores[5])
    counts: Counter[bytes] = Counter()
    for _ in range(3000):
        chosen = dissemination._targets(cluster.now, source)
        assert len(chosen) == len(set(chosen)) == MembershipConfig().gossip_fanout
        counts.update(chosen)
    others = {node_id(core) for core in cores} - {source, node_id(cores[0])}
    assert set(counts) == others  # never the source, nor ourselves
    expected = 3000 * 3 / len(others)
    assert all(abs(count - expected) < 0.2 * expected for count in counts.values())
