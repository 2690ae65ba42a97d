"""A message is refused by its declared structure before cbor2 decodes it (wire/declared.py),
and the check changes nothing else: the same registry without it (`check_heads=False`, the
decoder alone) is the oracle for every message it does not refuse by its heads."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnode.config import MEMBERS_MAX_LIMIT
from gossipnode.core.membership import Alive, PushPull, Updates
from gossipnode.wire import cbor
from gossipnode.wire.declared import MISMATCH_ITEMS_MAX
from gossipnode.wire.messages import MessageError
from gossipnode.wire.peer_messages import PEER_MESSAGES
from tests.wire.samples import ORIGIN, sample_registry

HEADS = sample_registry(walk_bytes_min=0)  # every message walked, however small
PLAIN = sample_registry()
PLAIN.check_heads = False
PUSH_PULL = PEER_MESSAGES.type_id(PushPull)


def raw(value):
    return cbor2.dumps(value, canonical=True)


@pytest.fixture
def cbor2_never_runs(monkeypatch):
    """Fail the test if anything reaches cbor2's decoder."""
    def refuse(*args, **kwargs):
        raise AssertionError("cbor2 decoded the message")
    monkeypatch.setattr(cbor.cbor2, "loads", refuse)


def statement(i: int) -> list:
    return [bytes([i % 256]) * 32, f"node-{i}", "10.0.0.1", 7946, i,
            [["dc", "east"], ["private_keys", "true"]], b"s" * 64]


def push_pull(alive: list, left: list = (), roots: list = ()) -> bytes:
    return raw([PUSH_PULL, True, [list(alive), list(left), [], []], list(roots), b"", b"", b""])


def test_a_push_pull_of_20000_statements_is_refused_before_cbor2_decodes_it(cbor2_never_runs):
    data = push_pull([statement(i) for i in range(20_000)])
    assert len(data) > 2_900_000
    with pytest.raises(MessageError, match=f"PushPull.state.alive: 20000 items, expected 0 to "
                                           f"{MEMBERS_MAX_LIMIT}"):
        PEER_MESSAGES.decode(data)


def test_the_walk_reaches_a_bound_past_a_full_list_and_inside_each_item(cbor2_never_runs):
    full = [statement(i) for i in range(MEMBERS_MAX_LIMIT)]
    with pytest.raises(MessageError, match=r"PushPull\.state\.left: 4097 items"):
        PEER_MESSAGES.decode(push_pull(full, left=[[b"x" * 32, 1, b"s" * 64]] * 4097))
    # Tags are bounded by the registry's items_max: one statement with too many is refused.
    many_tags = statement(1)
    many_tags[5] = [["k", "v"]] * (PEER_MESSAGES.items_max + 1)
    with pytest.raises(MessageError, match=r"PushPull.state.alive\[\].tags: 65537 items"):
        PEER_MESSAGES.decode(push_pull([statement(0), many_tags]))


def test_a_large_subtree_of_the_wrong_type_is_refused_at_its_head(cbor2_never_runs):
    # A bool was due; a list of a million items came, followed by too many statements.
    data = raw([PUSH_PULL, [0] * 1_000_000, [[], [], [], []], [], b"", b"", b""])
    with pytest.raises(MessageError, match=r"PushPull\.reply_wanted: expected bool, got list"):
        PEER_MESSAGES.decode(data)
    for value, reason in ([[0] * 1_000_000, "unknown message type id 0"],
                          [[PUSH_PULL, *[0] * 300_000], "PushPull: expected an array of 6 fields, "
                                                    "got 300000 fields"],
                          [{i: 0 for i in range(300_000)}, "a message must be a non-empty array, "
                                                       "got dict"],
                          [["x", *[0] * 300_000], "message type id must be an integer, got str"]):
        with pytest.raises(MessageError) as caught:
            PEER_MESSAGES.decode(raw(value))
        assert str(caught.value) == reason


def test_a_record_batch_is_refused_by_its_counts(cbor2_never_runs):
    data = raw([2, [], [[ORIGIN], [[]] * 101], [], b"\x11" * 32, None])
    with pytest.raises(MessageError, match=r"Batch.records: 101 records and 1 origins"):
        HEADS.decode(data)


def test_a_small_subtree_of_the_wrong_type_is_left_to_the_decoder():
    """Rule 3: the decoder names the fault, exactly as without the walk."""
    small = [PUSH_PULL, [0] * (MISMATCH_ITEMS_MAX - 1), [[statement(i) for i in range(40)],
                                                        [], [], []], [], b"", b"", b""]
    with pytest.raises(MessageError, match=r"PushPull\.reply_wanted: expected bool, got list"):
        PEER_MESSAGES.decode(raw(small))


def test_valid_messages_over_the_walk_threshold_decode_as_before():
    alive = tuple(Alive(bytes([i % 256]) * 32, f"node-{i}", "10.0.0.1", 7946, i,
                        (("dc", "east"),), b"s" * 64) for i in range(MEMBERS_MAX_LIMIT))
    message = PushPull(True, Updates(alive=alive))
    data = PEER_MESSAGES.encode(message)
    assert PEER_MESSAGES.decode(data) == message


# Values for the fields of the sample messages: mostly right, sometimes wrong in type or
# count, nested, so that the walk meets every kind of fault.
leaf = (st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.floats()
        | st.text(max_size=8) | st.binary(max_size=40) | st.just(ORIGIN))
field_values = st.recursive(leaf, lambda children: st.lists(children, max_size=110),
                            max_leaves=150)
row = st.tuples(st.just("groups"), st.text(min_size=1, max_size=4), st.integers(0, 1),
                st.none() | st.just(b"\xa0"), st.integers(0, 5), st.integers(0, 5),
                st.integers(0, 1), st.none()).map(list)
item = st.tuples(st.text(max_size=8), st.integers(), st.floats(), st.booleans(),
                 st.none() | st.binary(max_size=8)).map(list)
batch = st.tuples(
    st.lists(item, max_size=105) | field_values,
    st.tuples(st.lists(st.just(ORIGIN), max_size=2), st.lists(row, max_size=104)).map(list)
    | field_values,
    st.lists(st.text(max_size=3), max_size=4) | field_values,
    st.just(b"\x11" * 32) | field_values,
    st.none() | st.tuples(st.integers(0, 9), st.integers(0, 9), st.just(ORIGIN)).map(list)
    | field_values,
).map(list)
messages = (st.tuples(st.just(2), batch) | st.tuples(st.integers(0, 4), field_values)).map(
    lambda pair: [pair[0], *pair[1]] if isinstance(pair[1], list) else list(pair))


def outcome(registry, data):
    try:
        return "decoded", registry.decode(data)
    except MessageError as error:
        return "refused", str(error)


@settings(max_examples=500, deadline=None)
@given(messages)
def test_the_walk_refuses_nothing_the_decoder_accepts_and_words_refusals_alike(value):
    try:
        data = raw(value)
    except (cbor2.CBOREncodeError, ValueError, TypeError):
        return
    with_heads, plain = outcome(HEADS, data), outcome(PLAIN, data)
    if with_heads[0] == "decoded" or plain[0] == "decoded":
        assert with_heads == plain
        return
    # Both refuse. The walk's reason is the decoder's, but for a subtree of the wrong type
    # too large to skip (rule 3), which it refuses at its head; and the walk, reading in
    # order, may name a fault of the declared structure that comes before the first fault
    # the decoder meets (a CBOR fault anywhere is the decoder's first).
    if with_heads != plain:
        assert any(word in with_heads[1] for word in ("expected", "records and", "more than")), (
            with_heads, plain)
