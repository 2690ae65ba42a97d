"""The reconciliation session: two replicas, one session each side, back to back."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnode.config import LimitsConfig, ReconcileConfig
from gossipnode.core.errors import RemoteProtocolError
from gossipnode.core.merkle import Digest
from gossipnode.core.reconcile import ReconcileSession
from gossipnode.core.reconcile_messages import (
    ReconcileAbort,
    ReconcileOpen,
    ReconcileTurn,
    message_size,
)
from gossipnode.core.records import Record, Version, wins

DATASET = "consumers"
LIMITS = LimitsConfig()
CONFIG = ReconcileConfig()
ORIGINS = [bytes([n]) * 32 for n in range(1, 4)]


class Replica:
    """A store (key -> record) and its digest, kept in step the way NodeCore keeps them."""

    def __init__(self, records=()):
        self.records: dict[str, Record] = {}
        for record in records:
            self.apply(record)
        self.digest = Digest.build(DATASET, self.records.values())

    def apply(self, record: Record) -> bool:
        current = self.records.get(record.key)
        if not wins(record, current):
            return False
        self.records[record.key] = record
        if hasattr(self, "digest"):
            self.digest.replace(current, record)
        return True

    def fetch(self, key: str) -> Record | None:
        return self.records.get(key)


@dataclass
class Outcome:
    turns: int
    bytes_each_way: list[int]
    records_moved: int


def run_session(a: Replica, b: Replica, config: ReconcileConfig = CONFIG, seed: int = 0):
    """One session, a initiating; records are applied as they arrive, as NodeCore does."""
    rng = random.Random(seed)
    now = 0.0
    initiator = ReconcileSession.initiate(7, a.digest, a.fetch, config, LIMITS, rng, now)
    first = initiator.messages_to_send()
    assert len(first) == 1
    assert isinstance(first[0], ReconcileOpen)
    responder = ReconcileSession.respond(first[0], b.digest, b.fetch, config, LIMITS, now)
    sent = [message_size(first[0]), 0]
    moved = 0
    turns = 1
    sides = [(initiator, a), (responder, b)]
    speaker = 1
    for _ in range(4 * config.rounds_max):
        session, _replica = sides[speaker]
        peer, peer_replica = sides[1 - speaker]
        messages = session.messages_to_send()
        if not messages:
            break
        turns += 1
        for message in messages:
            assert isinstance(message, ReconcileTurn)
            assert message_size(message) <= config.message_bytes_max or len(message.records) == 1
            sent[speaker] += message_size(message)
            peer.receive(message, now)
            for record in peer.take_received_records():
                moved += 1
                peer_replica.apply(record)
        speaker = 1 - speaker
    assert initiator.done, initiator.failed
    assert responder.done, responder.failed
    return Outcome(turns, sent, moved)


def version(wall_ms: int, counter: int = 0, origin: int = 0) -> Version:
    return Version(wall_ms, counter, ORIGINS[origin])


def record(key: str, wall_ms: int, value: bytes | None = b"\xa1av\x01", origin: int = 0):
    return Record(DATASET, key, value, version(wall_ms, origin=origin))


def lww_union(*replicas: Replica) -> dict[str, Record]:
    union: dict[str, Record] = {}
    for replica in replicas:
        for key, item in replica.records.items():
            if wins(item, union.get(key)):
                union[key] = item
    return union


# -- model-based convergence -------------------------------------------------------------------

keys = st.sampled_from([f"k{n:03d}" for n in range(60)])
records = st.builds(
    lambda key, wall, origin, tomb: record(key, wall, None if tomb else key.encode(), origin),
    keys,
    st.integers(0, 50),
    st.integers(0, 2),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(
    shared=st.lists(records, max_size=40),
    only_a=st.lists(records, max_size=40),
    only_b=st.lists(records, max_size=40),
    branching=st.integers(2, 5),
    items_max=st.integers(1, 4),
    pure_scan=st.sampled_from([0, 1 << 20]),
    seed=st.integers(0, 3),
)
def test_one_session_leaves_both_sides_equal_to_the_lww_union(
    shared, only_a, only_b, branching, items_max, pure_scan, seed
):
    config = replace(
        CONFIG, branching=branching, items_max=items_max, pure_scan_items_max=pure_scan
    )
    a = Replica(shared + only_a)
    b = Replica(shared + only_b)
    expected = lww_union(a, b)
    run_session(a, b, config, seed)
    assert a.records == expected
    assert b.records == expected
    assert a.digest.root == b.digest.root == Replica(expected.values()).digest.root


# -- record-level transfer ---------------------------------------------------------------------


def _pair(n: int, d: int, recent: bool, seed: int):
    """n shared records, then d differing: d/2 only on each side (by age or at random)."""
    rng = random.Random(seed)
    base = [record(f"key-{i:06d}", 1_000_000 + i * 3) for i in range(n)]
    if recent:
        extra = [record(f"new-{i:06d}", 2_000_000 + i) for i in range(d)]
    else:
        extra = [record(f"new-{i:06d}", 1_000_000 + rng.randrange(n * 3)) for i in range(d)]
    rng.shuffle(extra)
    a = Replica(base + extra[: d // 2])
    b = Replica(base + extra[d // 2 :])
    return a, b


@pytest.mark.parametrize("recent", [False, True])
@pytest.mark.parametrize("d", [0, 1, 2, 17, 300])
def test_exactly_the_differing_records_move(d, recent):
    a, b = _pair(3000, d, recent, seed=d)
    outcome = run_session(a, b)
    assert outcome.records_moved == d
    assert a.records == b.records
    if d == 0:
        assert outcome.turns == 2
        assert sum(outcome.bytes_each_way) < 200


def test_conflicting_versions_of_one_key_converge_to_the_newer():
    a = Replica([record("k", 10, b"\xa1av\x01"), record("x", 5)])
    b = Replica([record("k", 20, b"\xa1av\x02", origin=1), record("x", 5)])
    run_session(a, b)
    assert a.records["k"] == b.records["k"] == record("k", 20, b"\xa1av\x02", origin=1)
    # A tombstone newer than a value wins too.
    c = Replica([record("k", 30, None)])
    run_session(a, c)
    assert a.records["k"].tombstone
    assert c.records["k"].tombstone


def test_one_side_empty_streams_a_plain_copy_in_capped_messages():
    a, _ = _pair(2000, 0, False, seed=1)
    empty = Replica()
    config = replace(CONFIG, message_bytes_max=16 * 1024)
    outcome = run_session(a, empty, config)
    assert empty.records == a.records
    assert outcome.records_moved == 2000
    assert outcome.turns <= 3


# -- hostile and broken peers ------------------------------------------------------------------


def _opened(a: Replica, b: Replica):
    rng = random.Random(1)
    initiator = ReconcileSession.initiate(1, a.digest, a.fetch, CONFIG, LIMITS, rng, 0.0)
    opening = initiator.messages_to_send()[0]
    responder = ReconcileSession.respond(opening, b.digest, b.fetch, CONFIG, LIMITS, 0.0)
    return initiator, responder


def test_a_turn_that_does_not_cover_the_key_space_ends_the_session():
    a, b = _pair(500, 40, False, seed=3)
    initiator, responder = _opened(a, b)
    responder.messages_to_send()
    # One SKIP up to bound 0x05 and nothing after it: the turn stops short of the end.
    with pytest.raises(RemoteProtocolError):
        initiator.receive(ReconcileTurn(1, 1, False, b"\x00\x00\x01\x05", ()), 0.0)
    assert initiator.failed
    assert isinstance(initiator.messages_to_send()[0], ReconcileAbort)


@pytest.mark.parametrize(
    "ranges",
    [
        b"\x0f",  # unknown mode
        b"\x07\x00",  # a coded entry with a bound (coded entries cover the whole space)
        b"\x81" + b"\x00" * 3,  # fingerprint cut short
        b"\x82\x05" + b"\x00" * 4,  # five ids announced, one given
        b"\x80\x80",  # an entry after the open-ended one
        b"\x00\x00\x01\x05\x00\x00\x01\x03\x80",  # bounds going down
        b"\x00\x05\x01\x05\x80",  # a shared prefix longer than the previous bound
        b"\x82" + bytes([17]) + b"\x00" * 68,  # more ids than items_max
    ],
)
def test_malformed_range_lists_end_the_session(ranges):
    a, b = _pair(500, 40, False, seed=4)
    initiator, responder = _opened(a, b)
    responder.messages_to_send()
    with pytest.raises(RemoteProtocolError):
        initiator.receive(ReconcileTurn(1, 1, False, ranges, ()), 0.0)
    assert initiator.failed
    assert not initiator.done


def test_answers_for_ranges_we_never_opened_end_the_session():
    a, b = _pair(500, 40, False, seed=5)
    # A WANT at turn 1: the initiator listed no ids, it only sent its root.
    initiator, responder = _opened(a, b)
    responder.messages_to_send()
    with pytest.raises(RemoteProtocolError, match="did not list"):
        initiator.receive(ReconcileTurn(1, 1, False, b"\x83\x01abcd", ()), 0.0)
    # A fingerprint over the whole key space at turn 3, when the initiator left only
    # smaller ranges open at turn 2.
    initiator, responder = _opened(a, b)
    initiator.receive(responder.messages_to_send()[-1], 0.0)
    assert initiator.messages_to_send()
    whole = b"\x81" + bytes(8) + b"\x01"
    with pytest.raises(RemoteProtocolError, match="outside every range"):
        initiator.receive(ReconcileTurn(1, 3, False, whole, ()), 0.0)


def test_endless_descent_is_cut_at_rounds_max():
    config = replace(CONFIG, rounds_max=2, branching=2, items_max=1)
    a, b = _pair(2000, 300, False, seed=6)
    with pytest.raises(RemoteProtocolError, match="rounds"):
        run_session(a, b, config)


def test_wrong_turn_number_and_oversized_messages_are_refused():
    a, b = _pair(200, 10, False, seed=7)
    initiator, responder = _opened(a, b)
    turn = responder.messages_to_send()[-1]
    with pytest.raises(RemoteProtocolError):
        initiator.receive(replace(turn, turn=5), 0.0)
    initiator, responder = _opened(a, b)
    turn = responder.messages_to_send()[-1]
    big = record("big", 1, b"\x00" * 300_000)
    with pytest.raises(RemoteProtocolError):
        initiator.receive(replace(turn, records=(big, big)), 0.0)


def test_a_stalled_session_is_abandoned_at_its_deadline():
    a, b = _pair(200, 10, False, seed=8)
    initiator, _responder = _opened(a, b)
    deadline = initiator.next_deadline()
    assert deadline == CONFIG.session_timeout_s
    initiator.handle_timer(deadline - 1)
    assert initiator.failed is None
    initiator.handle_timer(deadline)
    assert initiator.failed
    assert initiator.next_deadline() is None


def test_records_of_another_dataset_are_refused():
    a, b = _pair(200, 10, False, seed=9)
    initiator, responder = _opened(a, b)
    turn = responder.messages_to_send()[-1]
    foreign = Record("groups", "g", b"\xa0", version(1))
    with pytest.raises(RemoteProtocolError):
        initiator.receive(replace(turn, records=(foreign,)), 0.0)


def test_concurrent_writes_during_a_session_do_not_break_it():
    a, b = _pair(2000, 200, False, seed=10)
    rng = random.Random(2)
    initiator = ReconcileSession.initiate(3, a.digest, a.fetch, CONFIG, LIMITS, rng, 0.0)
    responder = ReconcileSession.respond(
        initiator.messages_to_send()[0], b.digest, b.fetch, CONFIG, LIMITS, 0.0
    )
    sides = [(initiator, a), (responder, b)]
    speaker, written = 1, 0
    while True:
        session, replica = sides[speaker]
        messages = session.messages_to_send()
        if not messages:
            break
        # A fresh write lands on the speaker between turns, and one key is purged.
        written += 1
        replica.apply(record(f"fresh-{written}", 3_000_000 + written))
        victim = next(iter(replica.records.values()))
        del replica.records[victim.key]
        replica.digest.remove(victim)
        peer, peer_replica = sides[1 - speaker]
        for message in messages:
            peer.receive(message, 0.0)
            for item in peer.take_received_records():
                peer_replica.apply(item)
        speaker = 1 - speaker
    assert initiator.done
    assert responder.done
    # A second session repairs what the first one could not see.
    expected = lww_union(a, b)
    run_session(a, b)
    assert a.records == b.records == expected


def test_pipelined_sessions_on_one_connection_do_not_mix():
    """Two sessions between the same pair, their messages interleaved one by one."""
    a, b = _pair(3000, 60, False, seed=11)
    sessions = []
    for number in (21, 22):
        rng = random.Random(number)
        initiator = ReconcileSession.initiate(number, a.digest, a.fetch, CONFIG, LIMITS, rng, 0.0)
        opening = initiator.messages_to_send()[0]
        responder = ReconcileSession.respond(opening, b.digest, b.fetch, CONFIG, LIMITS, 0.0)
        sessions.append({"a": initiator, "b": responder})
    replicas = {"a": a, "b": b}
    for _ in range(4 * CONFIG.rounds_max):
        queued = [
            (side, pair, message)
            for pair in sessions
            for side in ("a", "b")
            for message in pair[side].messages_to_send()
        ]
        if not queued:
            break
        for side, pair, message in queued:
            other = "b" if side == "a" else "a"
            pair[other].receive(message, 0.0)
            for item in pair[other].take_received_records():
                replicas[other].apply(item)
    assert all(pair[side].done for pair in sessions for side in ("a", "b"))
    assert a.records == b.records


def test_a_peer_abort_fails_the_session_without_error():
    a, b = _pair(300, 10, False, seed=12)
    initiator, _responder = _opened(a, b)
    initiator.receive(ReconcileAbort(1, "bored"), 0.0)
    assert initiator.failed
    assert "bored" in initiator.failed
    assert initiator.messages_to_send() == []


def test_empty_more_messages_neither_keep_a_session_open_nor_dodge_the_round_limit():
    """A peer that answers with empty `more=True` messages forever: the session still ends
    at its deadline, and at its round limit however fast the messages come."""
    a, b = _pair(500, 40, False, seed=12)
    initiator, responder = _opened(a, b)
    responder.messages_to_send()
    deadline = initiator.next_deadline()
    keep_alive = ReconcileTurn(1, 1, True, b"", ())
    for second in range(1, int(deadline)):
        initiator.receive(keep_alive, float(second))  # one a second, inside the timeout
    assert initiator.next_deadline() == deadline  # not moved by them
    initiator.handle_timer(deadline)
    assert initiator.failed and "stalled" in initiator.failed
    initiator, responder = _opened(a, b)
    responder.messages_to_send()
    for _ in range(2 * CONFIG.rounds_max - 1):  # turn 1 is expected: 127 empties fit
        initiator.receive(keep_alive, 0.0)
    with pytest.raises(RemoteProtocolError, match="rounds"):
        initiator.receive(keep_alive, 0.0)
    assert initiator.failed
