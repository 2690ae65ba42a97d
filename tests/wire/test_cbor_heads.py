"""The CBOR head reader (wire/cbor_heads.py) against cbor2 as an independent oracle: on any
value cbor2 encodes, the heads read are those of the value cbor2 decodes; on any bytes, the
reader ends where cbor2 ends, or refuses (HeadError) what cbor2 cannot decode, and raises
nothing else."""

from __future__ import annotations

import io
import math
import struct

import cbor2
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gossipnode.wire.cbor_heads import HeadError, heads, read_head, skip

# Values cbor2 encodes without a tag (integers beyond 64 bits would be bignums, tags 2, 3).
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=300),
    lambda children: (
        st.lists(children, max_size=30)
        | st.dictionaries(st.text(max_size=4) | st.integers(-5, 5), children, max_size=6)
    ),
    max_leaves=60,
)


def expected_heads(value):
    """(major type, argument) of each item of `value`, in order, as RFC 8949 encodes it;
    floats as their value (how many bits the encoder chose is its business)."""
    if value is None:
        yield 7, 22
    elif isinstance(value, bool):
        yield 7, 21 if value else 20
    elif isinstance(value, int):
        yield (0, value) if value >= 0 else (1, -1 - value)
    elif isinstance(value, float):
        yield 7, value
    elif isinstance(value, bytes):
        yield 2, len(value)
    elif isinstance(value, str):
        yield 3, len(value.encode())
    elif isinstance(value, list):
        yield 4, len(value)
        for item in value:
            yield from expected_heads(item)
    else:
        yield 5, len(value)
        for key, item in value.items():
            yield from expected_heads(key)
            yield from expected_heads(item)


def as_read(major, info, arg):
    if major == 7 and info in (25, 26, 27):
        return 7, struct.unpack({25: ">e", 26: ">f", 27: ">d"}[info],
                                arg.to_bytes(1 << (info - 24), "big"))[0]
    return major, arg


def same(left, right):
    return left == right or (isinstance(left[1], float) and math.isnan(left[1])
                             and isinstance(right[1], float) and math.isnan(right[1]))


@settings(max_examples=600, deadline=None)
@given(values, st.booleans())
def test_the_heads_read_are_those_of_the_value_cbor2_decodes(value, canonical):
    data = cbor2.dumps(value, canonical=canonical)
    decoded = cbor2.loads(data)
    read = [as_read(*head) for head in heads(data)]
    wanted = list(expected_heads(decoded))
    assert len(read) == len(wanted)
    assert all(same(r, w) for r, w in zip(read, wanted, strict=True)), (read, wanted)
    assert skip(data, 0) == len(data)
    # A budget of items: exactly the count of items, no fewer.
    assert skip(data, 0, len(read)) == len(data)
    assert skip(data, 0, len(read) - 1) is None


@settings(max_examples=300, deadline=None)
@given(values, st.data())
def test_every_truncation_is_refused(value, data):
    encoded = cbor2.dumps(value, canonical=True)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(HeadError):
        list(heads(encoded[:cut]))
    with pytest.raises(HeadError):
        skip(encoded[:cut], 0)
    with pytest.raises(cbor2.CBORDecodeError):
        cbor2.loads(encoded[:cut])


def cbor2_end(data: bytes) -> int | None:
    """Where cbor2 (definite lengths only) ends the item that starts `data`, or None if it
    cannot decode it."""
    stream = io.BytesIO(data)
    try:
        cbor2.CBORDecoder(stream, allow_indefinite=False, str_errors="replace").decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError):
        return None
    return stream.tell()


# Heads that lie: huge lengths and counts, indefinite lengths, reserved and break bytes.
liars = st.lists(st.sampled_from([
    b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", b"\x5b\x7f\xff\xff\xff\xff\xff\xff\xff",
    b"\xbb\x00\x00\x00\x01\x00\x00\x00\x00", b"\x7a\xff\xff\xff\xff", b"\x9f", b"\x5f",
    b"\xbf", b"\x7f", b"\xff", b"\x1c", b"\x3d", b"\xfe", b"\x98", b"\x82", b"\x41",
    b"\x00", b"\xf6", b"\xc1", b"\xf9\x00",
]), max_size=12).map(b"".join)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=64) | liars)
@example(b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff")
@example(b"\x5f\x41a\xff")
@example(b"")
def test_on_any_bytes_the_reader_ends_where_cbor2_does_or_refuses(data):
    try:
        end = skip(data, 0)
    except HeadError:
        end = None
    oracle = cbor2_end(data)
    if end is None:
        # What the reader refuses, cbor2 cannot decode either.
        assert oracle is None
    elif oracle is not None:
        assert end == oracle
    else:
        # cbor2 refused what the reader read whole: only for what rule 3 leaves to the
        # decoder (a value, not a head), never a structural fault.
        assert any(major in (6, 7) for major, _, _ in heads(data[:end]))


def test_a_head_that_lies_about_its_length_is_refused_at_once():
    for data in (b"\x9b" + b"\xff" * 8, b"\x5b" + b"\x7f" + b"\xff" * 7, b"\xbb" + b"\x01" * 8):
        with pytest.raises(HeadError):
            skip(data, 0)
    with pytest.raises(HeadError, match="indefinite length"):
        read_head(b"\x9f\x01\xff", 0)
    with pytest.raises(HeadError, match="reserved"):
        read_head(b"\x1c", 0)
    with pytest.raises(HeadError, match="trailing"):
        list(heads(b"\x01\x02"))
    assert read_head(b"\x19\x01\x00", 0) == (0, 25, 256, 3)
