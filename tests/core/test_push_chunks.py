"""Pushes are cut by bytes as well as by count, so any mix of records within the limits
travels in frames (core/replication.chunk_records)."""

from hypothesis import given
from hypothesis import strategies as st

from gossipnode.config import RECORD_OVERHEAD_BYTES_MAX, NodeConfig
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import chunk_records

MIB = 1024 * 1024
VERSION = Version(1, 0, b"\x01" * 32)


def record(key: str, size: int) -> Record:
    return Record("groups", key, b"x" * size, VERSION)


def test_four_records_of_one_mebibyte_go_in_separate_pushes():
    budget = NodeConfig().wire.push_bytes_max  # half of the 4 MiB frame
    records = [record(f"k{i}", MIB) for i in range(4)]
    chunks = list(chunk_records(records, 64, budget))
    assert [len(c) for c in chunks] == [1, 1, 1, 1]


@given(st.lists(st.integers(0, MIB), max_size=80), st.integers(1, 64))
def test_chunks_keep_order_and_stay_within_both_bounds(sizes, count_max):
    budget = 2 * MIB
    records = [record(f"k{i:03d}", size) for i, size in enumerate(sizes)]
    chunks = list(chunk_records(records, count_max, budget))
    assert [r for chunk in chunks for r in chunk] == records
    for chunk in chunks:
        assert 1 <= len(chunk) <= count_max
        # The bound the receiver cares about, computed here from the records themselves.
        size = sum(len(r.key) + len(r.value) + RECORD_OVERHEAD_BYTES_MAX for r in chunk)
        assert size <= budget
