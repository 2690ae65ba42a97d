"""The content check of record values, run by every node on each write and on each record a
peer sends (injected into the core as `content_check`).

Rules:
1. A value is a strict canonical CBOR map (wire/cbor.py).
2. No secret key material in any replicated dataset but those that hold it by design
   (`catalog.SECRET_KEY_DATASETS`: private_keys, and org_keys, which are cluster-wide), in
   any field, in any encoding: the packet walker (binary, armor, bare base64; Sequoia too
   in consumers) and `deep_scan.hidden_secret` (any offset, hex, base64 with junk, nested
   encodings).
3. Data bound to its key: a record of `consumers`, `private_keys`, `org_keys` or
   `trusted_keys` whose key is a fingerprint (40 or 64 hex digits) carries exactly one
   OpenPGP key with that fingerprint, in `secret_key` for private_keys (which must hold
   its secret: the secret half of the certificate of that fingerprint) and in `cert` for
   the others; a `fingerprint` field, if present, says the same. Anything else is refused,
   so nobody can file an unrelated certificate or key under Alice's fingerprint.
4. A private key must be the secret half of that certificate: when its signing key is not
   locked by a passphrase, it signs a challenge that must verify against the certificate
   it belongs to (pysequoia, about half a millisecond). A locked key cannot be tried; its
   fingerprint is all that can be checked.
"""

from __future__ import annotations

import re
from typing import Any

import pysequoia

from gossipnode.core.catalog import SECRET_KEY_DATASETS, is_replicated
from gossipnode.openpgp import packets
from gossipnode.openpgp.deep_scan import hidden_secret
from gossipnode.openpgp.keys import KeyParseError, split_keys, value_holds_secret
from gossipnode.openpgp.merge import PUBLIC_KEY_TAG, MergeError, fingerprint
from gossipnode.wire.cbor import CborError, decode_value

__all__ = ["BOUND_DATASETS", "record_refusal"]

BOUND_DATASETS = frozenset({"consumers", "private_keys", "org_keys", "trusted_keys"})
# Signed by a private key to prove it is the secret half of its certificate (rule 4).
_CHALLENGE = b"gossipnode: the secret half of this certificate"
# v4 fingerprints are 20 bytes, v6 fingerprints 32 bytes, written as hex.
_FINGERPRINT = re.compile(r"(?:[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})")


def record_refusal(dataset: str, key: str, value: bytes) -> str | None:
    """Why this value may not be stored as `dataset`/`key` (rules 1-3), or None."""
    try:
        decoded = decode_value(value)
    except CborError as error:
        return f"bad value: {error}"
    if is_replicated(dataset) and dataset not in SECRET_KEY_DATASETS and (
        _obvious_secret(dataset, decoded) or hidden_secret(decoded)
    ):
        hint = " (use private_keys)" if dataset == "consumers" else ""
        return f"secret key material is not allowed in {dataset}{hint}"
    if dataset in BOUND_DATASETS and _FINGERPRINT.fullmatch(key):
        return _binding_refusal(dataset, key.lower(), decoded)
    return None


def _obvious_secret(dataset: str, value: Any) -> bool:
    """Rule 2's first look. In `consumers`, whose values are certificates, Sequoia looks too
    (`value_holds_secret`); elsewhere only the packet walker, because Sequoia reports a
    secret key for any Secret-Key header in a chain of packets, also in random bytes, and
    mail bodies (web_messenger) are random-looking binary."""
    if dataset == "consumers":
        return value_holds_secret(value)
    return any(
        packets.has_secret_packet(
            leaf.encode("utf-8", "surrogatepass") if isinstance(leaf, str) else bytes(leaf)
        )
        for leaf in packets.value_leaves(value)
    )


def _binding_refusal(dataset: str, fingerprint: str, value: dict[str, Any]) -> str | None:
    field = "secret_key" if dataset == "private_keys" else "cert"
    stated = value.get("fingerprint")
    if stated is not None and (not isinstance(stated, str) or stated.lower() != fingerprint):
        return f"the value's fingerprint is not the record key {fingerprint}"
    material = value.get(field)
    if isinstance(material, str):
        material = material.encode("utf-8", "surrogatepass")
    if not isinstance(material, bytes):
        return f"a {dataset} record keyed by a fingerprint needs its key in {field!r}"
    if dataset != "private_keys":
        plain = _plain_certificate_fingerprint(material)
        if plain is not None:
            return None if plain == fingerprint else (
                f"{field!r} holds key {plain}, not {fingerprint}")
    try:
        keys = split_keys(material)
    except KeyParseError as error:
        return f"{field!r} is not an OpenPGP key: {error}"
    if len(keys) != 1:
        return f"{field!r} holds {len(keys)} keys; one is expected"
    if keys[0].fingerprint.lower() != fingerprint:
        return f"{field!r} holds key {keys[0].fingerprint}, not {fingerprint}"
    if dataset == "private_keys" and keys[0].secret_key is None:
        return f"{field!r} holds no secret key for {fingerprint}"
    if dataset == "private_keys" and not _secret_matches(keys[0].secret_key):
        return f"{field!r} is not the secret half of certificate {fingerprint}"
    return None


def _plain_certificate_fingerprint(material: bytes) -> str | None:
    """The fingerprint of `material` when it is plainly one binary public certificate: its
    packets cover it exactly, the first is the primary public key, no other primary key and
    no secret key packet follows. None for anything else (armor, several keys, unknown or
    malformed packets), which then goes to Sequoia. The binding needs only the primary key's
    fingerprint, and a bulk import or a full copy pays this per record: reading the packet
    headers costs a few microseconds where Sequoia's full parse costs about half a
    millisecond."""
    pile = packets.split_packets(material)
    if not pile or pile[0][0] != PUBLIC_KEY_TAG:
        return None
    tags = {tag for tag, _ in pile[1:]}
    if tags & {PUBLIC_KEY_TAG, packets.SECRET_KEY_TAG, packets.SECRET_SUBKEY_TAG}:
        return None
    try:
        return fingerprint(material)
    except MergeError:
        return None


def _secret_matches(secret_key: bytes | None) -> bool:
    """Rule 4: True when the key signs a challenge that verifies against its own
    certificate, or cannot be tried (locked, or no signing key); False when it signs and
    the signature does not verify, or the key cannot even be loaded."""
    try:
        tsk = pysequoia.Tsk.from_bytes(secret_key)
        cert = tsk.extract_certificate()
    except BaseException as error:
        if not isinstance(error, Exception) and type(error).__name__ != "PanicException":
            raise
        return False
    try:
        signer = tsk.signer()
    except BaseException as error:
        if not isinstance(error, Exception) and type(error).__name__ != "PanicException":
            raise
        return True  # locked by a passphrase, or no signing-capable key: cannot be tried
    try:
        signature = pysequoia.sign(signer, _CHALLENGE, armor=False)
        return bool(pysequoia.verify(bytes=signature, store=lambda ids: [cert]).valid_sigs)
    except BaseException as error:
        if not isinstance(error, Exception) and type(error).__name__ != "PanicException":
            raise
        return False
