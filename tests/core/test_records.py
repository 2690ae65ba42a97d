"""Records and the last-writer-wins rule."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipnode.config import LimitsConfig
from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.records import Record, Version, check_record, wins
from gossipnode.core.store import MemoryStore

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


def applied_in_order(deliveries):
    """What a store holds after taking `deliveries` one by one, in this order."""
    store = MemoryStore()
    for record in deliveries:
        store.apply_changes([record])
    return store.get("groups", "k")


@given(st.lists(records, min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_every_delivery_order_ends_with_the_same_record(deliveries, rnd):
    shuffled = list(deliveries)
    rnd.shuffle(shuffled)
    assert applied_in_order(deliveries) == applied_in_order(shuffled)


@given(st.lists(records, min_size=1, max_size=5))
def test_the_newest_version_wins_then_a_write_over_a_tombstone_then_the_larger_value(deliveries):
    # An independent statement of the rule: order by version, then live over deleted,
    # then by value bytes.
    expected = max(deliveries, key=lambda r: (r.version, r.value is not None, r.value or b""))
    assert applied_in_order(deliveries) == expected


@given(records)
def test_a_record_does_not_win_over_itself(a):
    assert not wins(a, a)
    assert applied_in_order([a, a]) == a


def stamp(wall_ms, origin=0):
    return Version(wall_ms, 0, ORIGINS[origin])


def test_tombstone_wins_over_older_write_and_loses_to_newer():
    write = Record("groups", "k", b"\xa0", stamp(10))
    tombstone = Record("groups", "k", None, stamp(20))
    newer = Record("groups", "k", b"\xa1\x61a\x01", stamp(30))
    assert wins(tombstone, write) and not wins(write, tombstone)
    assert wins(newer, tombstone) and not wins(tombstone, newer)


def test_origin_breaks_ties_between_equal_stamps():
    a = Record("groups", "k", b"\xa0", stamp(10, origin=1))
    b = Record("groups", "k", b"\xa0", stamp(10, origin=2))
    assert wins(b, a) and not wins(a, b)


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
