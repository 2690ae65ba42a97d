"""Records and the last-writer-wins merge."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipnode.config import LimitsConfig
from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.records import Record, Version, check_record, merge, wins

ORIGINS = [bytes([i]) * 32 for i in range(3)]

versions = st.builds(
    Version,
    wall_ms=st.integers(0, 5),
    counter=st.integers(0, 3),
    origin=st.sampled_from(ORIGINS),
)
records = st.builds(
    Record,
    dataset=st.just("groups"),
    key=st.just("k"),
    value=st.one_of(st.none(), st.binary(min_size=1, max_size=3)),
    version=versions,
)


@given(records, records)
def test_merge_is_commutative(a, b):
    assert merge(a, b) == merge(b, a)


@given(records, records, records)
def test_merge_is_associative(a, b, c):
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@given(records)
def test_merge_is_idempotent(a):
    assert merge(a, a) == a
    assert not wins(a, a)


def stamp(wall_ms, origin=0):
    return Version(wall_ms, 0, ORIGINS[origin])


def test_tombstone_wins_over_older_write_and_loses_to_newer():
    write = Record("groups", "k", b"\xa0", stamp(10))
    tombstone = Record("groups", "k", None, stamp(20))
    newer = Record("groups", "k", b"\xa1\x61a\x01", stamp(30))
    assert merge(write, tombstone) is tombstone
    assert merge(tombstone, newer) is newer


def test_origin_breaks_ties_between_equal_stamps():
    a = Record("groups", "k", b"\xa0", stamp(10, origin=1))
    b = Record("groups", "k", b"\xa0", stamp(10, origin=2))
    assert merge(a, b) is b


def test_check_record_limits():
    limits = LimitsConfig(record_bytes_max=100, key_bytes_max=8)
    check_record(Record("groups", "k", b"x" * 99, stamp(1)), limits)
    with pytest.raises(LocalProtocolError, match="over the limit of 100 bytes"):
        check_record(Record("groups", "k", b"x" * 100, stamp(1)), limits)
    with pytest.raises(LocalProtocolError, match="key is 9 bytes"):
        check_record(Record("groups", "k" * 9, b"", stamp(1)), limits)
    with pytest.raises(LocalProtocolError, match="unknown dataset 'nope'"):
        check_record(Record("nope", "k", b"", stamp(1)), limits)
    with pytest.raises(LocalProtocolError, match="non-empty"):
        check_record(Record("groups", "", b"", stamp(1)), limits)
    with pytest.raises(LocalProtocolError, match="control characters"):
        check_record(Record("groups", "a\nb", b"", stamp(1)), limits)
