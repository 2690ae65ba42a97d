"""Data bound to its key, on the fast path a bulk import takes: a plain binary certificate is
read by its packet headers, and must give the very answer Sequoia gives."""

from __future__ import annotations

import pysequoia
import pytest

from gossipnode.openpgp.content import record_refusal
from gossipnode.wire.cbor import encode_value


def _cert(user_id: str) -> bytes:
    tsk = pysequoia.Tsk.generate(user_ids=[user_id],
                                 cipher_suite=pysequoia.CipherSuite.Cv25519)
    return bytes(tsk.extract_certificate())


@pytest.fixture(scope="module")
def certs() -> list[bytes]:
    return [_cert(f"User {i} <user{i}@example.org>") for i in range(6)]


def _sequoia_fingerprint(cert: bytes) -> str:
    """The oracle: Sequoia's own reading, not the module's packet walker."""
    return pysequoia.Cert.from_bytes(cert).fingerprint.lower()


@pytest.mark.parametrize("dataset", ["consumers", "org_keys", "trusted_keys"])
def test_a_certificate_is_accepted_under_its_own_fingerprint_only(certs, dataset):
    for index, cert in enumerate(certs):
        own = _sequoia_fingerprint(cert)
        other = _sequoia_fingerprint(certs[(index + 1) % len(certs)])
        value = encode_value({"cert": cert})
        assert record_refusal(dataset, own, value) is None
        assert record_refusal(dataset, own.upper(), value) is None
        refused = record_refusal(dataset, other, value)
        assert refused is not None and own in refused.lower() and other in refused.lower()


def test_two_keys_or_a_secret_under_one_fingerprint_are_refused(certs):
    own = _sequoia_fingerprint(certs[0])
    pair = encode_value({"cert": certs[0] + certs[1]})
    assert "2 keys" in (record_refusal("trusted_keys", own, pair) or "")
    tsk = pysequoia.Tsk.generate(user_ids=["S <s@example.org>"],
                                 cipher_suite=pysequoia.CipherSuite.Cv25519)
    secret = encode_value({"cert": bytes(tsk)})
    fingerprint = _sequoia_fingerprint(bytes(tsk.extract_certificate()))
    assert record_refusal("trusted_keys", fingerprint, secret) is not None


def test_a_stated_fingerprint_must_agree(certs):
    own = _sequoia_fingerprint(certs[0])
    other = _sequoia_fingerprint(certs[1])
    value = encode_value({"cert": certs[0], "fingerprint": other})
    assert record_refusal("consumers", own, value) is not None
