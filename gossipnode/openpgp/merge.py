"""Certificate merge: two copies of one OpenPGP certificate become their packet union.

Why. Whole-record last-writer-wins would let an older copy of a key (an old export
re-imported somewhere) erase a revocation or a user ID that arrived later elsewhere.
Keyservers (SKS, Hockeypuck) and gpg instead merge certificates packet by packet; so do we.

Rules:
1. A certificate is read as a primary key, its direct signatures (key revocations,
   direct-key signatures), and components (user IDs, user attributes, subkeys), each with
   its set of signatures (a key-level signature is filed under the key wherever it
   appears, as Sequoia does). The union keeps every component and every signature of both
   sides; identical packets (same tag, same body) count once. Nothing is ever dropped, so a
   revocation, once held, stays.
2. The output is canonical: the primary key, its signatures sorted by body, then user IDs,
   user attributes and subkeys (each sorted by body), each followed by its signatures
   sorted by body, all with new-format headers. So `merge_certs` is commutative,
   associative and idempotent on the bytes, and every member ends with identical values.
3. Only public packets are ever written (public key, public subkey, user ID, user
   attribute, signature); Marker, Trust and Padding packets are dropped; anything else
   (a secret packet, an unknown tag) makes the input unmergeable (`MergeError`).
4. `merge_values` merges two record values (CBOR maps with a binary `cert`): the union
   certificate, derived fields recomputed from it (`DERIVED_FIELDS`, where the values
   carry them), a consumer `type` that stays "internal" once either side says so, and the
   other fields of the newer value. Values it cannot merge (no cert, different primary
   keys, not a certificate) give the newer value: last-writer-wins, as before.
5. Pure functions over bytes: no clock, no I/O. The core receives `merge_values` per
   dataset (`value_merges`) and never imports this package.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gossipnode.core.catalog import CERTIFICATE_DATASETS
from gossipnode.openpgp import packets
from gossipnode.openpgp.keys import KEY_BYTES_MAX, KeyParseError, ParsedKey, read_public_cert
from gossipnode.wire.cbor import CborError, decode_value, encode_value

__all__ = [
    "CERTIFICATE_DATASETS",
    "DERIVED_FIELDS",
    "Additions",
    "MergeError",
    "additions",
    "canonical_cert",
    "derived_fields",
    "describe",
    "fingerprint",
    "merge_certs",
    "merge_values",
    "split_certs",
    "value_merges",
]

# Fields computed from the certificate alone; a merge recomputes them.
DERIVED_FIELDS = ("fingerprint", "user_ids", "email", "created_unix_s", "expires_unix_s",
                  "revoked")

PUBLIC_KEY_TAG = 6
PUBLIC_SUBKEY_TAG = 14
USER_ID_TAG = 13
USER_ATTRIBUTE_TAG = 17
SIGNATURE_TAG = 2
# Marker (10), Trust (12) and Padding (21) carry nothing of the key.
IGNORED_TAGS = frozenset({10, 12, 21})
COMPONENT_TAGS = (USER_ID_TAG, USER_ATTRIBUTE_TAG, PUBLIC_SUBKEY_TAG)  # canonical order
# Signature types (RFC 9580 5.2.1): key, subkey and certification revocations.
KEY_REVOCATION = 0x20
# Signatures over the primary key alone: direct-key signature and key revocation.
KEY_LEVEL_TYPES = frozenset({0x1F, KEY_REVOCATION})
REVOCATION_TYPES = frozenset({0x20, 0x28, 0x30})


class MergeError(ValueError):
    """Bytes that are not one mergeable public certificate, or two different keys."""


@dataclass(frozen=True, slots=True)
class _Cert:
    primary: bytes
    direct: frozenset[bytes]
    # (tag, body) of each component -> bodies of its signatures
    components: dict[tuple[int, bytes], frozenset[bytes]]


@dataclass(frozen=True, slots=True)
class Additions:
    """What a merged certificate holds beyond an earlier copy (for import reports)."""

    user_ids: tuple[str, ...]
    user_attributes: int
    subkeys: int
    signatures: int
    revocation: bool

    def __bool__(self) -> bool:
        return bool(self.user_ids or self.user_attributes or self.subkeys or self.signatures
                    or self.revocation)

    def text(self) -> str:
        """One line: "user IDs a, b; 1 subkey; 3 signatures; revocation"."""
        parts = []
        if self.user_ids:
            parts.append("user ID " + ", ".join(self.user_ids))
        for count, name in ((self.user_attributes, "user attribute"),
                            (self.subkeys, "subkey"), (self.signatures, "signature")):
            if count:
                parts.append(f"{count} {name}{'s' if count > 1 else ''}")
        if self.revocation:
            parts.append("revocation")
        return "; ".join(parts) or "nothing"


def merge_certs(a: bytes, b: bytes) -> bytes:
    """The canonical union of two copies of one certificate (binary or one armor block).

    Raises MergeError for input that is not one public certificate, or when the two have
    different primary keys."""
    first, second = _parse(a), _parse(b)
    if first.primary != second.primary:
        raise MergeError("different primary keys: not two copies of one certificate")
    components = dict(first.components)
    for component, signatures in second.components.items():
        components[component] = components.get(component, frozenset()) | signatures
    return _serialize(_Cert(first.primary, first.direct | second.direct, components))


def canonical_cert(cert: bytes) -> bytes:
    """The canonical form of one certificate (`merge_certs(cert, cert)`)."""
    return _serialize(_parse(cert))


def fingerprint(cert: bytes) -> str:
    """The lowercase hex fingerprint of a certificate's primary key (RFC 9580 5.5.4):
    SHA-1 for v4 keys, SHA-256 for v6 keys. Raises MergeError."""
    first = next(packets.iter_packets(cert), None) if cert[:5] != b"-----" else None
    primary = first[1] if first is not None and first[0] == PUBLIC_KEY_TAG else None
    if primary is None:
        primary = _parse(cert).primary  # armored, or not starting with the key: read all
    if primary[:1] == b"\x04":
        return hashlib.sha1(b"\x99" + len(primary).to_bytes(2, "big") + primary,
                            usedforsecurity=False).hexdigest()
    if primary[:1] == b"\x06":
        return hashlib.sha256(b"\x9b" + len(primary).to_bytes(4, "big") + primary).hexdigest()
    raise MergeError(f"key version {primary[:1].hex()} is not supported")


def split_certs(data: bytes, keys_max: int) -> list[bytes] | None:
    """The canonical public certificates of a key file (armored blocks or binary), read by
    the packet walker alone: a fast path for big keyrings. None when the file needs the
    full parser (`keys.split_keys`): secret packets, unknown packets, anything unusual."""
    blocks = packets.armor_blocks(data, keys_max + 1)
    if len(blocks) > keys_max:
        return None
    chunks = [packets.decode_armor_block(block) for _, block in blocks] if blocks else [data]
    certs: list[bytes] = []
    for chunk in chunks:
        pile = packets.split_packets(chunk) if chunk is not None else None
        if not pile or pile[0][0] != PUBLIC_KEY_TAG:
            return None
        group: list[bytes] = []
        for tag, body in pile:
            if tag == PUBLIC_KEY_TAG and group:
                certs.append(b"".join(group))
                group = []
            if tag not in IGNORED_TAGS:
                group.append(packets.encode_packet(tag, body))
        certs.append(b"".join(group))
        if len(certs) > keys_max:
            return None
    try:
        return [canonical_cert(cert) for cert in certs]
    except MergeError:
        return None


def describe(cert: bytes) -> ParsedKey:
    """Sequoia's reading of one certificate (derived fields), after `canonical_cert`
    checked it holds public packets only. Raises MergeError."""
    try:
        return read_public_cert(canonical_cert(cert))
    except KeyParseError as error:
        raise MergeError(str(error)) from None


def derived_fields(parsed: ParsedKey) -> dict[str, Any]:
    return {
        "fingerprint": parsed.fingerprint,
        "user_ids": list(parsed.user_ids),
        "email": parsed.email,
        "created_unix_s": parsed.created_unix_s,
        "expires_unix_s": parsed.expires_unix_s,
        "revoked": parsed.revoked,
    }


def additions(before: bytes | None, after: bytes) -> Additions:
    """What certificate `after` holds that `before` (None: nothing) lacks. MergeError."""
    new = _parse(after)
    old = _parse(before) if before is not None else _Cert(b"", frozenset(), {})
    user_ids, user_attributes, subkeys, signatures, revocation = [], 0, 0, 0, False
    for component, sigs in new.components.items():
        tag, body = component
        if component not in old.components:
            if tag == USER_ID_TAG:
                user_ids.append(body.decode("utf-8", "replace"))
            elif tag == USER_ATTRIBUTE_TAG:
                user_attributes += 1
            else:
                subkeys += 1
        signatures += len(sigs - old.components.get(component, frozenset()))
    new_direct = new.direct - old.direct
    signatures += len(new_direct)
    revocation = any(_signature_type(sig) == KEY_REVOCATION for sig in new_direct)
    return Additions(tuple(sorted(user_ids)), user_attributes, subkeys, signatures, revocation)


def merge_values(older: bytes, newer: bytes) -> bytes:
    """Merge two encoded record values of one certificate (rule 4); `newer` is the value
    of the record with the higher version. Never raises."""
    if older == newer:  # one value under two versions: nothing to merge, no parse
        return newer
    try:
        old_map, new_map = decode_value(older), decode_value(newer)
    except CborError:
        return newer
    old_cert, new_cert = old_map.get("cert"), new_map.get("cert")
    if not isinstance(old_cert, bytes) or not isinstance(new_cert, bytes):
        return newer
    try:
        cert = merge_certs(old_cert, new_cert)
        derived = derived_fields(describe(cert))
    except MergeError:
        return newer
    merged = dict(new_map)
    merged["cert"] = cert
    merged.update({name: value for name, value in derived.items()
                   if name in old_map or name in new_map})
    # A public-only copy (an export, a keyserver's) never demotes a managed user.
    if "internal" in (old_map.get("type"), new_map.get("type")):
        merged["type"] = "internal"
    return encode_value(merged)


def value_merges() -> dict[str, Callable[[bytes, bytes], bytes]]:
    """The merge function per certificate dataset, for `NodeCore(merges=...)`."""
    return dict.fromkeys(CERTIFICATE_DATASETS, merge_values)


def _parse(cert: bytes) -> _Cert:
    if len(cert) > KEY_BYTES_MAX:
        raise MergeError(f"certificate is {len(cert)} bytes, over {KEY_BYTES_MAX} bytes")
    data = cert
    if cert[:5] == b"-----":
        blocks = packets.armor_blocks(cert, 2)
        decoded = packets.decode_armor_block(blocks[0][1]) if len(blocks) == 1 else None
        if decoded is None:
            raise MergeError("not one armored certificate")
        data = decoded
    pile = packets.split_packets(data)
    if not pile:
        raise MergeError("not a sequence of OpenPGP packets")
    pile = [(tag, body) for tag, body in pile if tag not in IGNORED_TAGS]
    if not pile or pile[0][0] != PUBLIC_KEY_TAG:
        raise MergeError("a certificate starts with a public key packet")
    direct: set[bytes] = set()
    components: dict[tuple[int, bytes], set[bytes]] = {}
    current: set[bytes] = direct
    for tag, body in pile[1:]:
        if tag == SIGNATURE_TAG:
            # Sequoia too files a key-level signature under the key wherever it sits.
            (direct if _signature_type(body) in KEY_LEVEL_TYPES else current).add(body)
        elif tag in COMPONENT_TAGS:
            current = components.setdefault((tag, body), set())
        else:
            raise MergeError(f"packet tag {tag} does not belong in a public certificate")
    return _Cert(pile[0][1], frozenset(direct),
                 {component: frozenset(sigs) for component, sigs in components.items()})


def _serialize(cert: _Cert) -> bytes:
    out = [packets.encode_packet(PUBLIC_KEY_TAG, cert.primary), *_signatures(cert.direct)]
    for component in sorted(cert.components, key=_component_order):
        out.append(packets.encode_packet(*component))
        out.extend(_signatures(cert.components[component]))
    return b"".join(out)


def _component_order(component: tuple[int, bytes]) -> tuple[int, bytes]:
    tag, body = component
    return COMPONENT_TAGS.index(tag), body


def _signatures(bodies: Iterable[bytes]) -> list[bytes]:
    return [packets.encode_packet(SIGNATURE_TAG, body) for body in sorted(bodies)]


def _signature_type(body: bytes) -> int | None:
    """The signature type octet: after the version (v4, v5, v6), or after version and the
    hashed-length octet (v3)."""
    if len(body) < 3:
        return None
    return body[2] if body[0] in (2, 3) else body[1]
