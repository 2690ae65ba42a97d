"""Certificate merge (gossipnode.openpgp.merge) over real certificates made with pysequoia.

Copies of one key are random subsets of a "full" certificate: some user IDs (with some of
their signatures), some subkeys, with or without the key revocation and a user ID
revocation. The oracle is Sequoia's own packet parser: the merged certificate holds every
packet either copy held, and nothing else.
"""

from __future__ import annotations

import random
from functools import cache

import pysequoia
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pysequoia.packet import PacketPile

from gossipnode.openpgp.merge import (
    MergeError,
    additions,
    canonical_cert,
    fingerprint,
    merge_certs,
    merge_values,
    split_certs,
)
from gossipnode.wire.cbor import decode_value, encode_value
from tests.openpgp_certs import Key, armored, packet_set

USER_IDS = ("Ann <ann@example.org>", "Ann Work <ann@work.example>", "Ann Home <ann@home.example>")


@cache
def full_cert() -> tuple[str, list[tuple[str, bytes]]]:
    """(fingerprint, packets as (tag, raw packet)) of one key with three user IDs, two
    subkeys, a revoked user ID, an expiry update and a key revocation."""
    key = Key.generate(USER_IDS[0])
    cert = key.cert
    certifier = key.tsk.certifier(None)
    for user_id in USER_IDS[1:]:
        cert = cert.add_user_id(user_id, certifier)
    revoked_uid = next(u for u in cert.user_ids if str(u) == USER_IDS[2])
    extra = bytes(cert.revoke_user_id(revoked_uid, certifier)) + bytes(cert.revoke(certifier))
    cert = pysequoia.Cert.from_bytes(bytes(cert) + extra)
    pile = [(str(p.tag), _raw(p)) for p in PacketPile.from_bytes(bytes(cert))]
    return key.fingerprint, pile


def _raw(packet) -> bytes:
    """A packet re-framed with a new-format header (tag from Sequoia, body from Sequoia)."""
    tags = {"Tag.PublicKey": 6, "Tag.PublicSubkey": 14, "Tag.UserID": 13, "Tag.Signature": 2,
            "Tag.UserAttribute": 17}
    body = bytes(packet.body)
    length = len(body)
    if length < 192:
        header = bytes((length,))
    elif length < 8384:
        header = bytes((((length - 192) >> 8) + 192, (length - 192) & 0xFF))
    else:
        header = b"\xff" + length.to_bytes(4, "big")
    return bytes((0xC0 | tags[str(packet.tag)],)) + header + body


def _copy(seed: int) -> bytes:
    """A random public copy: the primary key, and a random subset of the rest, keeping
    each signature after the component it belongs to."""
    rng = random.Random(seed)
    _, pile = full_cert()
    out = [pile[0][1]]
    keep_component = True
    for tag, raw in pile[1:]:
        if tag == "Tag.Signature":
            if keep_component and rng.random() < 0.7:
                out.append(raw)
        else:
            keep_component = rng.random() < 0.6
            if keep_component:
                out.append(raw)
    return b"".join(out)


copies = st.integers(min_value=0, max_value=2**32 - 1).map(_copy)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(copies, copies)
def test_merge_is_commutative_and_loses_nothing(a, b):
    merged = merge_certs(a, b)
    assert merged == merge_certs(b, a)
    assert packet_set(a) | packet_set(b) == packet_set(merged)
    assert pysequoia.Cert.from_bytes(merged).fingerprint.lower() == full_cert()[0]


@fast
@given(copies, copies, copies)
def test_merge_is_associative(a, b, c):
    assert merge_certs(merge_certs(a, b), c) == merge_certs(a, merge_certs(b, c))


@fast
@given(copies, copies)
def test_merge_is_idempotent_and_absorbs_what_it_holds(a, b):
    merged = merge_certs(a, b)
    assert merge_certs(merged, merged) == merged
    assert merge_certs(merged, a) == merged  # merging an older copy again changes nothing
    assert canonical_cert(a) == merge_certs(a, a)


@fast
@given(copies, copies)
def test_a_revocation_is_never_removed(a, b):
    revoked = pysequoia.Cert.from_bytes(a).is_revoked or pysequoia.Cert.from_bytes(b).is_revoked
    assert pysequoia.Cert.from_bytes(merge_certs(a, b)).is_revoked == revoked


def test_merged_values_recompute_derived_fields_and_keep_internal():
    key = Key.generate("Bea <bea@example.org>")
    internal = encode_value({"type": "internal", "cert": key.public(), "user_ids": ["x"],
                             "email": None, "revoked": False, "expires_unix_s": None,
                             "note": "old"})
    external = encode_value({"type": "external", "cert": key.revoked(), "revoked": False,
                             "note": "new"})
    merged = decode_value(merge_values(internal, external))
    assert merged["type"] == "internal"  # a public-only copy never demotes a managed user
    assert merged["revoked"] is True and merged["user_ids"] == ["Bea <bea@example.org>"]
    assert merged["email"] == "bea@example.org" and merged["note"] == "new"
    assert pysequoia.Cert.from_bytes(merged["cert"]).is_revoked


def test_values_that_cannot_merge_keep_the_newer_one():
    one, other = Key.generate("One <one@example.org>"), Key.generate("Two <two@example.org>")
    older = encode_value({"cert": one.public()})
    for newer in (encode_value({"cert": other.public()}), encode_value({"n": 1}),
                  encode_value({"cert": b"not a key"})):
        assert merge_values(older, newer) == newer


def test_secret_packets_are_never_merged():
    key = Key.generate("Sec <sec@example.org>")
    secret = pysequoia.Tsk.from_bytes(key.secret())
    with pytest.raises(MergeError):
        merge_certs(key.public(), bytes(secret))


def test_additions_name_what_a_copy_brought():
    key = Key.generate("Cy <cy@example.org>")
    merged = merge_certs(key.public(), key.with_user_id("Cy Two <cy2@example.org>"))
    added = additions(key.public(), merged)
    assert added.user_ids == ("Cy Two <cy2@example.org>",) and added.signatures == 1
    assert not added.revocation and added.subkeys == 0
    revoked = merge_certs(merged, key.revoked())
    assert additions(merged, revoked).text() == "1 signature; revocation"
    assert not additions(revoked, revoked)


def test_the_fast_split_agrees_with_sequoia():
    keys = [Key.generate(f"K{i} <k{i}@example.org>") for i in range(3)]
    blob = b"".join(armored(k.public()) for k in keys)
    certs = split_certs(blob, 10)
    assert [fingerprint(c) for c in certs] == [k.fingerprint for k in keys]
    assert [c.fingerprint.lower() for c in pysequoia.Cert.split_bytes(blob)] == \
        [k.fingerprint for k in keys]
    for cert, key in zip(certs, keys, strict=True):
        assert packet_set(cert) == packet_set(key.public())
    assert split_certs(keys[0].secret(), 10) is None  # secrets go the full parser's way
    assert split_certs(blob, 2) is None  # over the cap


@pytest.mark.parametrize("user_id", ["A B <a@b.example>", "a@b.example", "N (c) <x.y+z@d.e>",
                                     "no address here", "<only@x.example>"])
def test_the_short_reading_agrees_with_split_keys(user_id):
    """`read_public_cert` (imports and merges) and `split_keys` (files) agree on the
    derived fields, single-user-ID shortcut included."""
    from gossipnode.openpgp import generate_key, split_keys
    from gossipnode.openpgp.keys import read_public_cert

    (full,) = split_keys(generate_key(user_id, with_secret=False))
    short = read_public_cert(canonical_cert(full.public_cert))
    for field in ("fingerprint", "user_ids", "email", "created_unix_s", "expires_unix_s",
                  "revoked"):
        assert getattr(short, field) == getattr(full, field), field


def test_v6_keys_have_sha256_fingerprints_and_merge():
    tsk = pysequoia.Tsk.generate(user_ids=["Six <six@example.org>"],
                                 profile=pysequoia.Profile.RFC9580)
    cert = tsk.extract_certificate()
    extra = bytes(cert.add_user_id("Six Two <six2@example.org>", tsk.certifier(None)))
    assert fingerprint(bytes(cert)) == cert.fingerprint.lower()
    assert len(fingerprint(bytes(cert))) == 64
    merged = merge_certs(bytes(cert), extra)
    assert packet_set(bytes(cert)) | packet_set(extra) == packet_set(merged)
    assert merged == merge_certs(extra, bytes(cert))
