"""Reconciliation messages: exact sizes against the real CBOR encoder, and the range codec."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given

from gossipnode.core.reconcile_messages import (
    FINGERPRINT,
    ID_BYTES,
    ITEMS,
    SKIP,
    WANT,
    Entry,
    ReconcileAbort,
    ReconcileOpen,
    ReconcileTurn,
    encode_entry,
    message_size,
    parse_entries,
    render,
)
from gossipnode.core.records import Record, Version
from gossipnode.wire.cbor import encode

records = st.builds(
    Record,
    st.sampled_from(["consumers", "web_messenger"]),
    st.text(min_size=1, max_size=40),
    st.one_of(st.none(), st.binary(max_size=300)),
    st.builds(
        Version,
        st.integers(0, 2**48 - 1),
        st.integers(0, 2**32 - 1),
        st.binary(min_size=32, max_size=32),
    ),
    st.one_of(st.none(), st.binary(min_size=64, max_size=64)),
)
sessions = st.integers(0, 2**63 - 1)
messages = st.one_of(
    st.builds(ReconcileOpen, sessions, st.text(max_size=20), st.binary(max_size=8),
              st.binary(max_size=16), st.integers(0, 2**40)),
    st.builds(ReconcileTurn, sessions, st.integers(0, 200), st.booleans(),
              st.binary(max_size=70_000), st.lists(records, max_size=5).map(tuple)),
    st.builds(ReconcileAbort, sessions, st.text(max_size=50)),
)  # fmt: skip


@given(messages)
def test_message_size_is_the_exact_cbor_length(message):
    assert message_size(message) == len(encode(render(message)))


ids = st.lists(st.binary(min_size=ID_BYTES, max_size=ID_BYTES), max_size=5).map(tuple)
entry_bodies = st.one_of(
    st.builds(lambda: (SKIP, 0, 0, ())),
    st.builds(lambda f, c: (FINGERPRINT, f, c, ()), st.integers(0, 2**64 - 1),
              st.integers(0, 2**40)),
    st.builds(lambda i: (ITEMS, 0, 0, i), ids),
    st.builds(lambda i: (WANT, 0, 0, i), ids),
)  # fmt: skip


@given(
    st.lists(st.binary(min_size=1, max_size=12), unique=True, max_size=8),
    st.lists(entry_bodies, min_size=9, max_size=9),
)
def test_range_entries_round_trip(bounds, bodies):
    his = [*sorted(bounds), None]
    entries = [
        Entry(hi, mode, fingerprint, count, entry_ids)
        for hi, (mode, fingerprint, count, entry_ids) in zip(his, bodies, strict=False)
    ]
    data, previous = b"", b""
    for entry in entries:
        data += encode_entry(previous, entry)
        previous = entry.hi or previous
    assert parse_entries(data, bound_bytes_max=12, ids_max=5) == entries
