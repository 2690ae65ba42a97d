"""The hybrid logical clock."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipnode.core.hlc import ClockDriftError, HybridClock
from gossipnode.core.records import Version

ME = b"\x01" * 32
THEM = b"\x02" * 32


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=200))
def test_stamps_strictly_increase_whatever_the_wall_clock_does(walls):
    clock = HybridClock(ME, drift_max_ms=60_000)
    stamps = [clock.stamp(wall) for wall in walls]
    assert all(a < b for a, b in itertools.pairwise(stamps))


def test_wall_clock_jumping_backwards_keeps_order():
    clock = HybridClock(ME, drift_max_ms=60_000)
    first = clock.stamp(10_000)
    second = clock.stamp(5_000)  # the wall clock jumped back 5 s
    assert second > first
    assert second.wall_ms == 10_000 and second.counter == 1


def test_observing_a_remote_stamp_orders_later_writes_after_it():
    clock = HybridClock(ME, drift_max_ms=60_000)
    remote = Version(50_000, 7, THEM)
    clock.observe(remote, wall_ms=20_000)
    assert clock.stamp(20_001) > remote


def test_remote_stamp_too_far_ahead_is_refused():
    clock = HybridClock(ME, drift_max_ms=1_000)
    clock.observe(Version(11_000, 0, THEM), wall_ms=10_000)  # exactly at the bound
    with pytest.raises(ClockDriftError, match="1001 ms ahead"):
        clock.observe(Version(11_001, 0, THEM), wall_ms=10_000)
    # The refused stamp did not move the clock.
    assert clock.stamp(10_000).wall_ms == 11_000
