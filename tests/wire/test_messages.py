import contextlib
import math
from dataclasses import dataclass

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.records import Record, Version
from gossipnode.wire.messages import MessageError, MessageRegistry
from tests.wire.samples import ORIGIN, Batch, Blob, Item, sample_batch, sample_registry

REGISTRY = sample_registry()


def raw(value):
    return cbor2.dumps(value, canonical=True)


def test_a_batch_with_records_round_trips():
    batch = sample_batch()
    data = REGISTRY.encode(batch)
    assert REGISTRY.decode(data) == batch
    # Canonical: the same message always gives the same bytes.
    assert REGISTRY.encode(REGISTRY.decode(data)) == data


items = st.builds(
    Item,
    name=st.text(max_size=10),
    count=st.integers(min_value=-(2**64), max_value=2**64 - 1),
    ratio=st.floats(allow_nan=False, allow_infinity=False),
    flag=st.booleans(),
    blob=st.none() | st.binary(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(items)
def test_items_round_trip(item):
    assert REGISTRY.decode(REGISTRY.encode(item)) == item


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (["a", True, 0.5, True, None], "Item.count: expected int, got bool"),
        (["a", 1, 1, True, None], "Item.ratio: expected float, got int"),
        (["a", 1, 0.5, 1, None], "Item.flag: expected bool, got int"),
        ([b"a", 1, 0.5, True, None], "Item.name: expected str, got bytes"),
        (["a", 1, 0.5, True, "x"], "Item.blob: expected bytes, got str"),
        (["a", None, 0.5, True, None], "Item.count: expected int, got null"),
        (["a", 1, math.inf, True, None], "Item.ratio: float inf is not finite"),
        (["a", 1, 0.5, True], "Item: expected an array of 5 fields, got 4 fields"),
        (["a" * 65, 1, 0.5, True, None], "Item.name: 65 bytes, expected 0 to 64"),
    ],
)
def test_items_outside_the_schema_are_refused_with_the_field_named(fields, reason):
    with pytest.raises(MessageError) as caught:
        REGISTRY.decode(raw([1, *fields]))
    assert str(caught.value) == reason


def batch_fields(**changes):
    fields = {
        "items": [],
        "records": [[], []],
        "tags": [],
        "digest": b"\x11" * 32,
        "stamp": None,
    }
    fields.update(changes)
    return [2, *fields.values()]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"digest": b"\x11" * 31}, "Batch.digest: 31 bytes, expected exactly 32"),
        ({"tags": ["a", "b", "c", "d"]}, "Batch.tags: 4 items, expected 0 to 3"),
        ({"tags": "abc"}, "Batch.tags: expected an array, got str"),
        ({"items": [[1]]}, "Batch.items[]: expected an array of 5 fields, got 1 fields"),
        ({"stamp": [1, 2, b"\x00" * 31]}, "Batch.stamp.origin: 31 bytes, expected 32"),
        ({"stamp": [-1, 2, ORIGIN]}, "Batch.stamp.wall_ms: -1 is out of range"),
        ({"stamp": [1, 2**32, ORIGIN]}, "Batch.stamp.counter: 4294967296 is out of range"),
        # A record batch (wire/record_codec.py): [origins, records], each record
        # [dataset, key, form, value, wall_ms delta, counter, origin index, signature].
        (
            {"records": [[ORIGIN], [["consumers", "k", 0, "v", 1, 1, 0, None]]]},
            "Batch.records[0].value: expected null or at most 4194304 bytes",
        ),
        (
            {"records": [[ORIGIN], [["", "k", 0, None, 1, 1, 0, None]]]},
            "Batch.records[0].dataset: expected a name of 1 to 64 bytes",
        ),
        (
            {"records": [[ORIGIN], [["groups", "k", 0, None, 1, 1, 0, b"\x01" * 63]]]},
            "Batch.records[0].signature: expected null or 64 bytes",
        ),
        (
            {"records": [[ORIGIN], [["groups", "k", 0, None, 1, 1, 0]]]},
            "Batch.records[0]: expected an array of 8 fields",
        ),
        (
            {"records": [[ORIGIN], [["groups", "k", 0, None, 1, 1, 1, None]]]},
            "Batch.records[0].origin: index 1 names no origin",
        ),
        (
            {"records": [[b"\x00" * 31], [["groups", "k", 0, None, 1, 1, 0, None]]]},
            "Batch.records.origins: expected 32 bytes each",
        ),
        (
            {"records": [[ORIGIN], [["groups", "k", 0, None, 5, 1, 0, None],
                                    ["groups", "j", 0, None, -6, 1, 0, None]]]},
            "Batch.records[1].wall_ms: out of range",
        ),
        (
            {"records": [[ORIGIN], [["groups", "k", 0, None, 1, 2**32, 0, None]]]},
            "Batch.records[0].counter: out of range",
        ),
        (
            {"records": [[ORIGIN], [["groups", "k", 2, b"\xa0", 1, 1, 0, None]]]},
            "Batch.records[0].form: 2 is not a form of this protocol",
        ),
        (
            {"records": [[ORIGIN], [["groups", "k", True, b"\xa0", 1, 1, 0, None]]]},
            "Batch.records[0].form: True is not a form of this protocol",
        ),
        (
            {"records": [[ORIGIN], [["groups", "k", 1, b"\xa1dcertC\x01\x02\x03", 1, 1, 0,
                                     None]]]},
            "Batch.records[0].value: no certificate to derive the fingerprint from",
        ),
        (
            {"records": [[ORIGIN], [["groups", None, 0, b"\xa0", 1, 1, 0, None]]]},
            "Batch.records[0].key: derived, but the value has no fingerprint",
        ),
        (
            {"records": [[ORIGIN], [["groups", None, 0, None, 1, 1, 0, None]]]},
            "Batch.records[0].key: derived, but the value has no fingerprint",
        ),
        ({"records": [[], [], []]}, "Batch.records: expected [origins, records]"),
        ({"items": list(range(101))}, "Batch.items: 101 items, expected 0 to 100"),
    ],
)
def test_batches_outside_the_schema_are_refused(changes, reason):
    with pytest.raises(MessageError) as caught:
        REGISTRY.decode(raw(batch_fields(**changes)))
    assert str(caught.value) == reason


def test_a_valid_hand_made_batch_is_accepted():
    fields = batch_fields(records=[[ORIGIN], [["groups", "g", 0, None, 5, 0, 0, None],
                                               ["groups", "h", 0, b"\xa0", -2, 1, 0, None]]])
    message = REGISTRY.decode(raw(fields))
    assert message.records == (Record("groups", "g", None, Version(5, 0, ORIGIN)),
                               Record("groups", "h", b"\xa0", Version(3, 1, ORIGIN)))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([], "a message must be a non-empty array, got list"),
        ({"a": 1}, "a message must be a non-empty array, got dict"),
        ([99, 1], "unknown message type id 99"),
        (["1", 1], "message type id must be an integer, got str"),
        ([True, 1], "message type id must be an integer, got bool"),
    ],
)
def test_envelopes_outside_the_schema_are_refused(value, reason):
    with pytest.raises(MessageError, match=reason):
        REGISTRY.decode(raw(value))


# Every class of malformed CBOR that wire/cbor.py refuses, each wrapped as a Blob payload
# where that is possible, so only the CBOR layer can refuse it.
BUILTIN_TAGS = [
    0,
    1,
    2,
    3,
    4,
    5,
    25,
    28,
    29,
    30,
    35,
    36,
    37,
    52,
    54,
    100,
    256,
    258,
    260,
    261,
    1004,
    43000,
    55799,
]


def tagged(tag):
    # [3, tag(x)] where x is a small valid item for most tags.
    head = cbor2.dumps(cbor2.CBORTag(tag, 0), canonical=True)
    return b"\x82\x03" + head


# name: (bytes, what the reason must say)
MALFORMED = {
    "deep nesting": (b"\x82\x03" + b"\x81" * 40 + b"\x00", "nesting depth"),
    "indefinite array": (b"\x9f\x03\x40\xff", "indefinite length"),
    "indefinite bytes": (b"\x82\x03\x5f\x41a\xff", "indefinite length"),
    "duplicate keys": (b"\xa2\x61a\x01\x61a\x02", "Duplicate map key"),
    "trailing bytes": (raw([3, b"x"]) + b"\x00", "1 trailing bytes"),
    "non-canonical int": (b"\x82\x18\x03\x41x", "not in canonical form"),
    "non-canonical length": (b"\x82\x03\x58\x01x", "not in canonical form"),
    "non-canonical float": (
        b"\x86\x01\x61a\x01\xfb\x3f\xe0\x00\x00\x00\x00\x00\x00\xf5\xf6",
        "not in canonical form",
    ),
    "unsorted map": (b"\xa2\x61b\x00\x61a\x00", "not in canonical form"),
    "truncated": (raw([3, b"xyz"])[:-1], "premature end"),
    "invalid utf-8": (b"\x82\x01\x62\xff\xfe", "utf-8"),
    "empty": (b"", "premature end"),
    **{
        f"tag {tag}": (tagged(tag), f"CBOR tag {tag} is not allowed")
        for tag in [*BUILTIN_TAGS, 9999]
    },
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_each_class_of_malformed_cbor_is_refused(name):
    data, reason = MALFORMED[name]
    with pytest.raises(MessageError, match="malformed CBOR") as caught:
        REGISTRY.decode(data)
    assert reason in str(caught.value)


def test_the_canonical_counterparts_are_accepted():
    # The malformed cases above fail for the reason named, not by accident.
    assert REGISTRY.decode(b"\x82\x03\x41x") == Blob(b"x")
    assert REGISTRY.decode(raw([3, b"x"])) == Blob(b"x")


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_message_error(data):
    with contextlib.suppress(MessageError):
        REGISTRY.decode(data)


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=1500, deadline=None)
@given(st.integers(0, 4), cbor_values)
def test_random_cbor_values_decode_or_raise_message_error(type_id, body):
    value = [type_id, *body] if isinstance(body, list) else [type_id, body]
    try:
        data = raw(value)
    except (cbor2.CBOREncodeError, ValueError, TypeError):
        return
    try:
        message = REGISTRY.decode(data)
    except MessageError:
        return
    assert REGISTRY.encode(message) == data


def test_encoding_a_malformed_message_is_our_error():
    with pytest.raises(LocalProtocolError, match=r"Item\.count: expected int, got bool"):
        REGISTRY.encode(Item("a", True, 0.5, True, None))
    with pytest.raises(LocalProtocolError, match="does not fit 64 bits"):
        REGISTRY.encode(Item("a", 2**64, 0.5, True, None))
    with pytest.raises(LocalProtocolError, match="not a registered message"):
        REGISTRY.encode(Record("groups", "g", None, Version(0, 0, ORIGIN)))
    with pytest.raises(LocalProtocolError, match="expected tuple, got list"):
        REGISTRY.encode(Batch([], (), (), b"\x11" * 32, None))


def test_registration_refuses_unfit_classes_and_taken_ids():
    @dataclass(frozen=True, slots=True)
    class WithDict:
        table: dict

    @dataclass(frozen=True, slots=True)
    class WithUnion:
        either: int | str

    registry = MessageRegistry()
    with pytest.raises(LocalProtocolError, match="unsupported field type"):
        registry.register(1, WithDict)
    with pytest.raises(LocalProtocolError, match=r"only `X \| None` unions"):
        registry.register(1, WithUnion)
    registry.register(1, Blob)
    with pytest.raises(LocalProtocolError, match="taken by Blob"):
        registry.register(1, Item)
    with pytest.raises(LocalProtocolError, match="already registered"):
        registry.register(2, Blob)


def test_a_push_pull_with_too_many_statements_is_refused_by_its_declared_count():
    """A list of statements longer than one per member is refused at its array's length,
    before any statement of it is decoded: here every item is malformed, and the reason is
    still the count (a decoded item would have failed on its shape first)."""
    from gossipnode.config import MEMBERS_MAX_LIMIT
    from gossipnode.core.membership import PushPull
    from gossipnode.wire.peer_messages import PEER_MESSAGES

    too_many = [0] * (MEMBERS_MAX_LIMIT + 1)
    for position in range(4):
        lists: list[list] = [[], [], [], []]
        lists[position] = too_many
        data = cbor2.dumps([PEER_MESSAGES.type_id(PushPull), True, lists, [], b"", b"", b""],
                           canonical=True)
        with pytest.raises(MessageError, match=f"{MEMBERS_MAX_LIMIT + 1} items, expected 0 to "
                                               f"{MEMBERS_MAX_LIMIT}"):
            PEER_MESSAGES.decode(data)
    lists = [[], [], [0], []]  # one malformed item: refused for its shape
    data = cbor2.dumps([PEER_MESSAGES.type_id(PushPull), True, lists, [], b"", b"", b""],
                       canonical=True)
    with pytest.raises(MessageError, match="expected an array"):
        PEER_MESSAGES.decode(data)
