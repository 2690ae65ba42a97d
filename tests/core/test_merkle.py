"""The incremental range digests, held against a naive recomputation."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gossipnode.core import leaf_sums
from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.merkle import SUM_MASK, Digest, leaf_digest, separator, sort_key
from gossipnode.core.records import Record, Version

DATASET = "consumers"
ORIGIN = b"\x05" * 32


def record(key: str, wall_ms: int, value: bytes | None = b"\xa0", counter: int = 0) -> Record:
    return Record(DATASET, key, value, Version(wall_ms, counter, ORIGIN))


def naive(records, lo: bytes, hi: bytes | None) -> tuple[int, int]:
    inside = [r for r in records if sort_key(r) >= lo and (hi is None or sort_key(r) < hi)]
    return sum(leaf_digest(r) for r in inside) & SUM_MASK, len(inside)


def test_leaf_digest_covers_every_field():
    base = record("k", 10, b"\xa1av\x01")
    variants = [
        Record("groups", "k", b"\xa1av\x01", base.version),
        record("k2", 10, b"\xa1av\x01"),
        record("k", 11, b"\xa1av\x01"),
        record("k", 10, b"\xa1av\x01", counter=1),
        Record(DATASET, "k", b"\xa1av\x01", Version(10, 0, b"\x06" * 32)),
        record("k", 10, b"\xa1av\x02"),
        record("k", 10, None),
    ]
    digests = {leaf_digest(r) for r in [base, *variants]}
    assert len(digests) == len(variants) + 1


@given(st.binary(max_size=8), st.binary(max_size=8))
def test_separator_is_the_shortest_bound_between_two_keys(x, y):
    if x == y:
        return
    before, after = sorted([x, y])
    cut = separator(before, after)
    assert before < cut <= after
    assert after.startswith(cut)
    assert not before < cut[:-1] if cut[:-1] else True


class DigestMachine(RuleBasedStateMachine):
    """Inserts, replacements and removals against a plain dict, with tiny chunks."""

    def __init__(self):
        super().__init__()
        self.saved_chunk = leaf_sums.CHUNK_ITEMS_MAX
        leaf_sums.CHUNK_ITEMS_MAX = 4  # so that chunks split and vanish within a few steps
        self.model: dict[str, Record] = {}
        self.digest = Digest(DATASET)

    def teardown(self):
        leaf_sums.CHUNK_ITEMS_MAX = self.saved_chunk

    @rule(key=st.integers(0, 40), wall=st.integers(0, 30), tomb=st.booleans())
    def put(self, key, wall, tomb):
        name = f"k{key}"
        previous = self.model.get(name)
        new = record(name, wall, None if tomb else name.encode(), counter=previous is not None)
        if previous is not None and sort_key(previous) == sort_key(new):
            new = record(name, wall + 31)
        self.digest.replace(previous, new)
        self.model[name] = new

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove(self, data):
        name = data.draw(st.sampled_from(sorted(self.model)))
        self.digest.remove(self.model.pop(name))

    @rule(lo=st.integers(0, 32), hi=st.one_of(st.none(), st.integers(0, 32)))
    def range_digest_is_the_sum_of_its_leaves(self, lo, hi):
        low = lo.to_bytes(6, "big")
        high = None if hi is None else hi.to_bytes(6, "big") + b"k2"
        if high is not None and high < low:
            return
        assert self.digest.fingerprint(low, high) == naive(self.model.values(), low, high)
        got = list(self.digest.items(low, high))
        expect = sorted(
            (sort_key(r), leaf_digest(r))
            for r in self.model.values()
            if sort_key(r) >= low and (high is None or sort_key(r) < high)
        )
        assert got == expect

    @precondition(lambda self: self.model)
    @rule(parts=st.integers(2, 6))
    def split_cuts_evenly_inside_the_range(self, parts):
        cuts = self.digest.split(b"", None, parts)
        assert cuts == sorted(set(cuts))
        counts = [self.digest.rank(c) for c in [*cuts, None]]
        sizes = [b - a for a, b in zip([0, *counts], counts, strict=False)]
        assert all(size > 0 for size in sizes)
        assert max(sizes) - min(sizes) <= 1 if len(self.model) >= parts else True

    @precondition(lambda self: self.model)
    @rule(data=st.data(), lo=st.integers(0, 32))
    def find_leaf_finds_an_item_by_its_low_bits_within_the_range(self, data, lo):
        target = self.model[data.draw(st.sampled_from(sorted(self.model)))]
        low = lo.to_bytes(6, "big")
        found = self.digest.find_leaf(low, None, leaf_digest(target) & ((1 << 64) - 1))
        assert found == (sort_key(target) if sort_key(target) >= low else None)

    @invariant()
    def root_equals_a_rebuild(self):
        rebuilt = Digest.build(DATASET, list(self.model.values()))
        assert self.digest.root == rebuilt.root
        assert self.digest.count == rebuilt.count == len(self.model)
        assert all(self.digest.contains(r) for r in self.model.values())


TestDigestMachine = DigestMachine.TestCase
TestDigestMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_find_leaf_names_the_lone_extra_item():
    records = [record(f"k{i}", i) for i in range(100)]
    full = Digest.build(DATASET, records)
    missing = Digest.build(DATASET, records[:37] + records[38:])
    total, count = full.fingerprint(b"", None)
    fewer, fewer_count = missing.fingerprint(b"", None)
    assert count == fewer_count + 1
    lone = (total - fewer) & ((1 << 64) - 1)
    assert full.find_leaf(b"", None, lone) == sort_key(records[37])
    assert full.find_leaf(b"", sort_key(records[37]), lone) is None


def test_build_reports_progress_and_refuses_duplicates_and_foreign_records():
    seen = []
    records = [record(f"k{i}", i) for i in range(10)]
    Digest.build(DATASET, records, progress=seen.append, progress_every=4)
    assert seen == [4, 8, 10]
    with pytest.raises(LocalProtocolError):
        Digest.build(DATASET, [*records, records[3]])
    with pytest.raises(LocalProtocolError):
        Digest.build(DATASET, [Record("groups", "g", b"\xa0", records[0].version)])


def test_misuse_is_a_local_error():
    digest = Digest.build(DATASET, [record("a", 1)])
    with pytest.raises(LocalProtocolError):
        digest.insert(record("a", 1))
    with pytest.raises(LocalProtocolError):
        digest.remove(record("b", 1))
    with pytest.raises(LocalProtocolError):
        digest.insert(Record("groups", "g", b"\xa0", Version(1, 0, ORIGIN)))
