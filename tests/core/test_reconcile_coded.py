"""The coded exchange inside a reconciliation session: spread differences are found from an
estimate and coded cells in three round trips, exactly the symmetric difference moves, and a
peer's coded entries cannot make a session run long or send much."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from gossipnode.config import LimitsConfig, ReconcileConfig
from gossipnode.core.coded_cells import CELL_BYTES, SUBTABLES, TABLE_CELLS_MAX
from gossipnode.core.errors import RemoteProtocolError
from gossipnode.core.merkle import Digest
from gossipnode.core.reconcile import ReconcileSession
from gossipnode.core.reconcile_messages import (
    CODED,
    CODED_WANT,
    ESTIMATE,
    MORE,
    Entry,
    ReconcileTurn,
    encode_entry,
    message_size,
    parse_entries,
)
from gossipnode.core.records import Record, Version, wins

DATASET = "consumers"
LIMITS = LimitsConfig()
CONFIG = replace(ReconcileConfig(), coded_items_min=0)
ORIGINS = [bytes([n]) * 32 for n in range(1, 3)]


class Replica:
    def __init__(self, records):
        self.records = {r.key: r for r in records}
        self.digest = Digest.build(DATASET, self.records.values())

    def apply(self, record: Record) -> None:
        current = self.records.get(record.key)
        if wins(record, current):
            self.records[record.key] = record
            self.digest.replace(current, record)

    def fetch(self, key: str) -> Record | None:
        return self.records.get(key)


def record(key: str, wall: int, origin: int = 0) -> Record:
    return Record(DATASET, key, key.encode(), Version(wall, 0, ORIGINS[origin]))


def modes(message) -> list[int]:
    return [entry.mode for entry in parse_entries(message.ranges, 64, 1 << 20)]


def run(a: Replica, b: Replica, config: ReconcileConfig = CONFIG):
    """One session, a initiating; returns (turns, records received by a, by b, modes seen).
    Records are applied once the session is over, so that what each side sends is what it
    held before (the oracle's sets)."""
    initiator = ReconcileSession.initiate(3, a.digest, a.fetch, config, LIMITS,
                                          random.Random(1), 0.0)  # fmt: skip
    opening = initiator.messages_to_send()[0]
    responder = ReconcileSession.respond(opening, b.digest, b.fetch, config, LIMITS, 0.0)
    received: list[list[Record]] = [[], []]
    seen: set[int] = set()
    sides = [(initiator, a), (responder, b)]
    turns, speaker = 1, 1
    for _ in range(4 * config.rounds_max):
        messages = sides[speaker][0].messages_to_send()
        if not messages:
            break
        turns += 1
        peer = sides[1 - speaker][0]
        for message in messages:
            assert message_size(message) <= config.message_bytes_max
            seen.update(modes(message))
            peer.receive(message, 0.0)
            received[1 - speaker].extend(peer.take_received_records())
        speaker = 1 - speaker
    assert initiator.done and responder.done, (initiator.failed, responder.failed)
    for replica, records in zip((a, b), received, strict=True):
        for item in records:
            replica.apply(item)
    return turns, received[0], received[1], seen


def spread_pair(rng: random.Random, shared: int, only_a: int, only_b: int, conflicts: int):
    """Shared records, then records only one side holds and keys both rewrote, all at random
    times: differences spread over the whole key space."""
    span = 10 * (shared + only_a + only_b + conflicts) + 1
    base = [record(f"s{i}", rng.randrange(span)) for i in range(shared)]
    a_side = [record(f"a{i}", rng.randrange(span)) for i in range(only_a)]
    b_side = [record(f"b{i}", rng.randrange(span), 1) for i in range(only_b)]
    rewritten = [f"s{i}" for i in rng.sample(range(shared), min(conflicts, shared))]
    a_records = {r.key: r for r in base + a_side}
    b_records = {r.key: r for r in base + b_side}
    for key in rewritten:
        a_records[key] = record(key, rng.randrange(span))
        b_records[key] = record(key, rng.randrange(span), 1)
    return Replica(a_records.values()), Replica(b_records.values())


def items(replica: Replica) -> set[tuple[str, Version]]:
    return {(r.key, r.version) for r in replica.records.values()}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), shared=st.integers(5_000, 8_000), only_a=st.integers(0, 50),
       only_b=st.integers(10, 50), conflicts=st.integers(0, 10))  # fmt: skip
def test_exactly_the_symmetric_difference_moves(seed, shared, only_a, only_b, conflicts):
    """Whichever way the session goes (coded cells for most of these, descent for the rest)."""
    a, b = spread_pair(random.Random(seed), shared, only_a, only_b, conflicts)
    a_items, b_items = items(a), items(b)
    turns, to_a, to_b, seen = run(a, b)
    event("coded" if CODED in seen else "descent")
    # Oracle: set arithmetic on (key, version) before the session.
    assert sorted((r.key, r.version) for r in to_a) == sorted(b_items - a_items)
    assert sorted((r.key, r.version) for r in to_b) == sorted(a_items - b_items)
    assert a.records == b.records
    assert a.digest.root == b.digest.root
    assert turns <= 2 * CONFIG.rounds_max


@pytest.mark.parametrize("seed", range(4))
def test_spread_differences_take_three_round_trips_and_about_twenty_bytes_each(seed):
    rng = random.Random(seed)
    a, b = spread_pair(rng, 20_000, 200, 200, 30)
    differing = len(items(a) ^ items(b))
    turns, to_a, to_b, seen = run(a, b)
    assert {ESTIMATE, CODED} <= seen
    assert len(to_a) + len(to_b) == differing
    assert turns <= 6  # open, split, estimate, cells, pushes and wants, pushes: 3 round trips


def test_recent_differences_stay_with_range_descent():
    base = [record(f"s{i}", 10 * i) for i in range(20_000)]
    newest = [record(f"n{i}", 300_000 + i, i % 2) for i in range(400)]
    a = Replica(base + newest[::2])
    b = Replica(base + newest[1::2])
    _turns, to_a, to_b, seen = run(a, b)
    assert len(to_a) + len(to_b) == 400
    assert not seen & {ESTIMATE, CODED, MORE, CODED_WANT}


# -- hostile peers ------------------------------------------------------------------------------


def _at_estimate(seed: int = 5):
    """A session whose initiator A has just sent its ESTIMATE; returns (A, B's replica)."""
    a, b = spread_pair(random.Random(seed), 6_000, 40, 40, 5)
    initiator = ReconcileSession.initiate(9, a.digest, a.fetch, CONFIG, LIMITS,
                                          random.Random(2), 0.0)  # fmt: skip
    responder = ReconcileSession.respond(initiator.messages_to_send()[0], b.digest, b.fetch,
                                         CONFIG, LIMITS, 0.0)  # fmt: skip
    for message in responder.messages_to_send():
        initiator.receive(message, 0.0)
    sent = initiator.messages_to_send()
    assert ESTIMATE in modes(sent[-1])
    return initiator, a


def turn(number: int, entry: Entry, records=()) -> ReconcileTurn:
    return ReconcileTurn(9, number, False, encode_entry(b"", entry), tuple(records))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(1, 64))
def test_random_cells_from_a_peer_end_in_descent_or_failure_within_the_round_limit(seed, size):
    rng = random.Random(seed)
    initiator, a = _at_estimate()
    number, held, asked = 3, 0, size
    sent_bytes, kinds = 0, None
    for _ in range(2 * CONFIG.rounds_max):
        cells = rng.randbytes(SUBTABLES * (asked - held) * CELL_BYTES)
        try:
            initiator.receive(turn(number, Entry(None, CODED, start=held, size=asked,
                                                 data=cells)), 0.0)  # fmt: skip
        except RemoteProtocolError:
            break
        answer = initiator.messages_to_send()
        sent_bytes += sum(map(message_size, answer))
        kinds = modes(answer[0])
        if kinds != [MORE]:
            break  # descent (or a decode of garbage, whose ids it cannot find: descent too)
        held, asked = asked, parse_entries(answer[0].ranges, 64, 16)[0].size
        number += 2
    assert initiator.failed is not None or kinds != [MORE]
    # It never sent more records than it holds, nor grew the table past its own.
    assert asked <= a.digest.coded.size
    assert sent_bytes < 16 * 1024 * 1024


def _cells(start: int, size: int) -> Entry:
    return Entry(None, CODED, start=start, size=size,
                 data=bytes(SUBTABLES * (size - start) * CELL_BYTES))  # fmt: skip


def test_coded_entries_that_answer_nothing_we_asked_end_the_session():
    initiator, a = _at_estimate()
    larger = 2 * a.digest.coded.size
    with pytest.raises(RemoteProtocolError, match="beyond our table"):
        initiator.receive(turn(3, _cells(0, larger)), 0.0)
    initiator, _a = _at_estimate()
    with pytest.raises(RemoteProtocolError, match="answers nothing we asked"):
        initiator.receive(turn(3, Entry(None, CODED_WANT, coded_ids=(1, 2))), 0.0)
    initiator, _a = _at_estimate()
    with pytest.raises(RemoteProtocolError, match="answers nothing we asked"):
        initiator.receive(turn(3, Entry(None, MORE, size=9)), 0.0)
    initiator, _a = _at_estimate()
    beside = b"\x00\x00\x01\x05" + encode_entry(b"", Entry(None, MORE, size=9))
    with pytest.raises(RemoteProtocolError, match="alone in its turn"):
        initiator.receive(ReconcileTurn(9, 3, False, beside, ()), 0.0)
    # Cells of a table larger than the protocol allows do not even parse.
    initiator, _a = _at_estimate()
    with pytest.raises(RemoteProtocolError, match="out of bounds"):
        initiator.receive(turn(3, _cells(0, 2 * TABLE_CELLS_MAX)), 0.0)


def _at_cells(seed: int = 8):
    """A session whose responder B has just sent its coded cells: (B, B's replica, size)."""
    a, b = spread_pair(random.Random(seed), 6_000, 40, 40, 5)
    initiator = ReconcileSession.initiate(9, a.digest, a.fetch, CONFIG, LIMITS,
                                          random.Random(2), 0.0)  # fmt: skip
    responder = ReconcileSession.respond(initiator.messages_to_send()[0], b.digest, b.fetch,
                                         CONFIG, LIMITS, 0.0)  # fmt: skip
    for message in responder.messages_to_send():
        initiator.receive(message, 0.0)
    for message in initiator.messages_to_send():
        responder.receive(message, 0.0)
    sent = parse_entries(responder.messages_to_send()[-1].ranges, 64, 16)[0]
    assert sent.mode == CODED
    return responder, b, sent.size


def test_a_want_is_bounded_by_the_cells_sent_and_answered_with_exactly_what_it_names():
    responder, b, size = _at_cells()
    every = sorted((int.from_bytes(key[:6], "big") << 32 | (leaf & 0xFFFFFFFF), key)
                   for key, leaf in b.digest.items(b"", None))  # fmt: skip
    greedy = tuple(coded_id for coded_id, _ in every[: SUBTABLES * size + 1])
    with pytest.raises(RemoteProtocolError, match="more coded ids"):
        responder.receive(turn(4, Entry(None, CODED_WANT, coded_ids=greedy)), 0.0)

    responder, b, size = _at_cells()
    chosen = every[100:105]
    responder.receive(turn(4, Entry(None, CODED_WANT, coded_ids=tuple(c for c, _ in chosen))),
                      0.0)  # fmt: skip
    answer = responder.messages_to_send()
    sent = [record for message in answer for record in message.records]
    assert sorted(r.key for r in sent) == sorted(key[6:].decode() for _, key in chosen)
    assert responder.done


@settings(max_examples=300, deadline=None)
@given(head=st.sampled_from([ESTIMATE, CODED, MORE, CODED_WANT]), end=st.booleans(),
       body=st.binary(max_size=200))  # fmt: skip
def test_coded_entries_of_random_bytes_parse_or_are_refused_cleanly(head, end, body):
    data = bytes([head | (0x80 if end else 0)]) + body
    try:
        entries = parse_entries(data, 64, 16)
    except RemoteProtocolError:
        return
    assert end and entries[0].mode == head and entries[0].hi is None


def test_writes_between_turns_leave_at_worst_a_difference_for_the_next_session():
    rng = random.Random(11)
    a, b = spread_pair(rng, 20_000, 150, 150, 20)
    union = dict(a.records)
    for key, item in b.records.items():
        if wins(item, union.get(key)):
            union[key] = item
    initiator = ReconcileSession.initiate(4, a.digest, a.fetch, CONFIG, LIMITS,
                                          random.Random(3), 0.0)  # fmt: skip
    responder = ReconcileSession.respond(initiator.messages_to_send()[0], b.digest, b.fetch,
                                         CONFIG, LIMITS, 0.0)  # fmt: skip
    sides = [(initiator, a), (responder, b)]
    speaker, writes, seen = 1, 0, set()
    for _ in range(4 * CONFIG.rounds_max):
        messages = sides[speaker][0].messages_to_send()
        if not messages:
            break
        peer, peer_replica = sides[1 - speaker]
        for message in messages:
            seen.update(modes(message))
            peer.receive(message, 0.0)
            for item in peer.take_received_records():
                peer_replica.apply(item)  # applied at once, as NodeCore does
        # Both sides take new writes between turns (their cells change under the session).
        for replica in (a, b):
            replica.apply(record(f"w{writes}", rng.randrange(300_000), writes % 2))
            writes += 1
        speaker = 1 - speaker
    assert initiator.done and responder.done
    assert CODED in seen
    for key, item in union.items():  # every record either side held before is on both now
        assert not wins(item, a.records.get(key)) and not wins(item, b.records.get(key))
    run(a, b)  # and the next session brings the rest
    assert a.records == b.records
