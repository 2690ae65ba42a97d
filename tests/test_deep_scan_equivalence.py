"""The deep scan (openpgp/deep_scan.py) answers exactly as the scanner it replaced, kept
unchanged in tests/deep_scan_oracle.py: it is a containment defence, so a faster scan may
not let through anything the old one refused, nor refuse what it let through."""

import base64
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnode.openpgp import deep_scan, generate_key, packets, split_keys
from tests import deep_scan_oracle

SECRET_KEY = split_keys(generate_key("Erin <erin@example.org>"))[0].secret_key
(_TAG, KEY_BODY), *_ = packets.split_packets(SECRET_KEY)
# Pieces that make candidates: header bytes of tags 5 and 7 in both formats, key versions,
# algorithm ids, MPI-like lengths; and whole or cut secret key packets.
PIECES = [bytes([b]) for b in (0x94, 0x95, 0x96, 0x97, 0x9C, 0x9D, 0xC5, 0xC7, 4, 5, 6,
                               1, 22, 27, 0xFF, 0, 0x2B)]
PACKETS = [SECRET_KEY, SECRET_KEY[:len(SECRET_KEY) // 2], bytes([0xC5, len(KEY_BODY)]) + KEY_BODY,
           bytes([0x94, len(KEY_BODY)]) + KEY_BODY, bytes([0x97]) + KEY_BODY]

chunks = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(PIECES),
    st.sampled_from(PACKETS),
    st.builds(lambda b, cut: b[:cut], st.sampled_from(PACKETS), st.integers(0, 200)),
)
binaries = st.lists(chunks, max_size=8).map(b"".join)


def encodings(data):
    return st.sampled_from([
        data,
        data.hex().encode(),
        base64.b64encode(data),
        b"!" + base64.b64encode(data),
        base64.b64encode(data.hex().encode()),
        base64.urlsafe_b64encode(b"?" + data),
    ])


leaves = st.one_of(
    binaries.flatmap(encodings),
    binaries.flatmap(encodings).map(lambda b: b.decode("latin-1")),
    st.text(max_size=80),
)
values = st.recursive(
    leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                    st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_the_scan_answers_as_the_old_scanner_did(value):
    assert deep_scan.hidden_secret(value) == deep_scan_oracle.hidden_secret(value)


def test_the_generated_values_reach_both_answers():
    """The strategy is not vacuous: it holds values either scanner refuses."""
    assert deep_scan.hidden_secret([b"junk" + SECRET_KEY, os.urandom(8)])
    assert deep_scan_oracle.hidden_secret(base64.b64encode(b"!" + SECRET_KEY).decode())
    assert not deep_scan.hidden_secret({"pad": "x" * 1000})
