"""Record batches on the wire: what the receiver derives is not sent, and every record
arrives exactly as it was sent, whatever its value holds."""

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push
from gossipnode.openpgp import consumer_value, generate_key, split_keys
from gossipnode.wire.peer_messages import PEER_MESSAGES
from gossipnode.wire.record_codec import certificate_fingerprint
from tests.wire.samples import ORIGIN

OTHER = b"\x09" * 32


def canonical(value):
    return cbor2.dumps(value, canonical=True)


@pytest.fixture(scope="module")
def keys():
    return [split_keys(generate_key(f"User {n} <u{n}@example.org>", with_secret=False))[0]
            for n in range(3)]


def test_the_fingerprint_is_sequoias(keys):
    # Sequoia's reading of each certificate is the oracle.
    for parsed in keys:
        assert certificate_fingerprint(parsed.public_cert) == parsed.fingerprint.lower()


def test_old_and_new_packet_headers_give_the_same_fingerprint(keys):
    cert = keys[0].public_cert
    assert cert[0] == 0xC6 and cert[1] < 192  # Sequoia writes a new-format header
    body = cert[2:2 + cert[1]]
    old_one = bytes([0x98, len(body)]) + body  # old format, one length byte
    old_two = bytes([0x99]) + len(body).to_bytes(2, "big") + body
    new_five = bytes([0xC6, 255]) + len(body).to_bytes(4, "big") + body
    for header in (old_one, old_two, new_five):
        assert certificate_fingerprint(header) == keys[0].fingerprint.lower()


@pytest.mark.parametrize("cert", [b"", b"\x00", b"\xc6", b"\xc6\x05\x04", b"\xcd\x02\x04\x00",
                                  b"\xc6\xe0\x04", b"\x9b\x04", b"\xc6\x02\x03\x00"])
def test_what_is_no_primary_key_packet_has_no_fingerprint(cert):
    assert certificate_fingerprint(cert) is None


def consumer_record(parsed, wall_ms=1_700_000_000_123, origin=ORIGIN):
    return Record("consumers", parsed.fingerprint, canonical(consumer_value(parsed)),
                  Version(wall_ms, 0, origin))


def test_a_certificate_record_goes_without_its_key_and_fingerprint(keys):
    records = tuple(consumer_record(parsed, 1_700_000_000_000 + n)
                    for n, parsed in enumerate(keys))
    push = Push(1, records)
    data = PEER_MESSAGES.encode(push)
    for parsed in keys:
        assert parsed.fingerprint.encode() not in data
    assert data.count(ORIGIN) == 1  # named once for the batch
    assert PEER_MESSAGES.decode(data) == push
    # Keys, stamps and origins included, smaller than the values alone.
    assert len(data) < sum(len(r.value) for r in records)


def test_records_whose_fingerprint_is_not_derivable_go_in_full_and_arrive_unchanged(keys):
    parsed = keys[0]
    value = consumer_value(parsed)
    wrong = canonical({**value, "fingerprint": keys[1].fingerprint})
    upper = canonical({**value, "fingerprint": parsed.fingerprint.upper()})
    not_canonical = b"\xb9\x00\x01" + canonical("fingerprint")[0:] + canonical(
        parsed.fingerprint)  # a one-entry map with a non-shortest length
    records = (
        Record("consumers", parsed.fingerprint, wrong, Version(5, 0, ORIGIN)),
        Record("consumers", parsed.fingerprint.upper(), upper, Version(4, 0, OTHER)),
        Record("trusted_keys", "x", not_canonical, Version(9, 1, ORIGIN)),
        Record("consumers", keys[2].fingerprint, None, Version(9, 2, ORIGIN)),
    )
    push = Push(2, records)
    assert PEER_MESSAGES.decode(PEER_MESSAGES.encode(push)) == push


names = st.text(min_size=1, max_size=12)
values = st.none() | st.dictionaries(st.sampled_from(["cert", "fingerprint", "n", "type"]),
                                     st.binary(max_size=20) | st.text(max_size=40)
                                     ).map(canonical) | st.binary(max_size=30)
record_strategy = st.builds(
    Record,
    dataset=names,
    key=names,
    value=values,
    version=st.builds(Version, st.integers(0, 2**48 - 1), st.integers(0, 2**32 - 1),
                      st.sampled_from([ORIGIN, OTHER])),
    signature=st.none() | st.binary(min_size=64, max_size=64),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(record_strategy, max_size=6))
def test_any_batch_round_trips(records):
    push = Push(3, tuple(records))
    assert PEER_MESSAGES.decode(PEER_MESSAGES.encode(push)) == push


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=6), st.lists(st.booleans(), max_size=6))
def test_batches_of_certificates_and_tombstones_round_trip(picks, deletes):
    parsed = [split_keys(generate_key(f"K{n} <k{n}@example.org>", with_secret=False))[0]
              for n in range(3)]
    records = []
    for position, pick in enumerate(picks):
        record = consumer_record(parsed[pick], 1_700_000_000_000 - position)
        if position < len(deletes) and deletes[position]:
            record = Record(record.dataset, record.key, None, record.version)
        records.append(record)
    push = Push(4, tuple(records))
    assert PEER_MESSAGES.decode(PEER_MESSAGES.encode(push)) == push
