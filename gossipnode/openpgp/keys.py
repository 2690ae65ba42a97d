"""The OpenPGP boundary: key files in, parsed keys and record values out (pysequoia inside).

Rules of this module:
1. Pure functions over the bytes the caller passes; no files, no clock, no network.
   Only this package imports pysequoia; the sans-IO core never does.
2. Sizes are capped before any parsing (`FILE_BYTES_MAX`; `KEYS_PER_FILE_MAX` keys and
   armor blocks per file), and each key after it (`KEY_BYTES_MAX`).
3. Every parser failure surfaces as `KeyParseError` with a one-line reason: pysequoia
   raises RuntimeError with a Rust backtrace appended when RUST_BACKTRACE is set, and a
   Rust panic arrives as pyo3's PanicException, which is not an `Exception`.
4. Secret material is found by packet tags (Secret-Key 5, Secret-Subkey 7), never with
   pysequoia's deprecated `Cert.has_secret_keys` / `Cert.secrets` (they warn, and tests
   turn warnings into errors).
5. What may travel to every member is only ever `bytes(cert)` of a `Cert`, and only after
   `contains_secret_key_material` has confirmed it holds no secret packet: for a secret
   packet Sequoia cannot parse (kept opaque), `bytes(cert)` DOES copy it verbatim. The
   full secret key travels only in a `private_keys` value.
6. `contains_secret_key_material` never raises and answers True if EITHER Sequoia (one
   armor block at a time) OR the pure-Python walker of `packets.py` sees a secret key
   packet: it guards invariant 2 (containment), so a blind spot of one parser must not
   let a private key into `consumers`. Bytes that are not OpenPGP at all give False.
   Sequoia's work per check is bounded (`SEQUOIA_PARSES_PER_CHECK_MAX`); data that would
   need more is answered True (refused), never waved through unchecked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pysequoia
from pysequoia.packet import Packet, PacketPile, Tag

from gossipnode.core.errors import LocalProtocolError
from gossipnode.openpgp import packets
from gossipnode.openpgp.certinfo import email_of, first_email, packet_tag, primary_first

__all__ = [
    "FILE_BYTES_MAX",
    "KEYS_PER_FILE_MAX",
    "KEY_BYTES_MAX",
    "SEQUOIA_PARSES_PER_CHECK_MAX",
    "KeyParseError",
    "ParsedKey",
    "consumer_value",
    "contains_secret_key_material",
    "generate_key",
    "private_key_value",
    "read_public_cert",
    "split_keys",
    "value_holds_secret",
]

MIB = 1024 * 1024
# A large RSA-4096 key with many signatures and a photo ID stays well under 1 MiB; the
# record limit (limits.record_bytes_max) is 1 MiB too, so a bigger key could not be stored.
KEY_BYTES_MAX = 1 * MIB
# An operator's import file: 64 MiB holds a 10,000-key keyring of ordinary keys (a
# Cv25519 key with its subkeys is 1.7 KiB armored, an RSA one 3-10 KiB). The client reads
# the file into memory once; the agent receives it in batches (commands/keys_verbs.py).
FILE_BYTES_MAX = 64 * MIB
# Bounds the work of one import (at some 1,000-3,000 keys/s, under a minute); a bigger
# keyring is imported in parts.
KEYS_PER_FILE_MAX = 50_000
# Sequoia parses one armor block per call, and a failed parse costs up to about 0.5 ms
# (a Rust backtrace is captured when RUST_BACKTRACE is set). An honest record value holds
# a few keys at most (a consumer value: one binary cert), so 64 parses per check is ample;
# data that needs more is refused as secret rather than checked at any cost.
SEQUOIA_PARSES_PER_CHECK_MAX = 64
# Longest reason text kept from pysequoia: one log line.
REASON_CHARACTERS_MAX = 200

_SECRET_TAGS = (Tag.SecretKey, Tag.SecretSubkey)
_PRIMARY_TAGS = (Tag.PublicKey, Tag.SecretKey)
# Packets that may appear in a transferable key (RFC 9580 10.1). Marker, Trust and Padding
# carry nothing of the key and are dropped before Sequoia builds the certificate.
_KEY_TAGS = (
    Tag.PublicKey, Tag.SecretKey, Tag.PublicSubkey, Tag.SecretSubkey,
    Tag.UserID, Tag.UserAttribute, Tag.Signature,
)
_IGNORED_TAGS = (Tag.Marker, Tag.Trust, Tag.Padding)
_CONSUMER_TYPES = ("internal", "external")


class KeyParseError(ValueError):
    """Bytes that are not an acceptable OpenPGP key file. `str()` is one line."""


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """One key of a key file.

    `public_cert` is the binary public projection (public packets only) and is safe to
    send anywhere; `secret_key` is the whole binary transferable secret key, or None when
    the input held no secret packets for this key. Times are seconds since the Unix epoch.
    Signatures are not verified here: `revoked` and `expires_unix_s` are what Sequoia
    reports, `user_ids` are ordered primary first when a self-signature flags one.
    """

    fingerprint: str
    user_ids: tuple[str, ...]
    email: str | None
    public_cert: bytes
    secret_key: bytes | None
    created_unix_s: int
    expires_unix_s: int | None
    revoked: bool


def split_keys(data: bytes) -> list[ParsedKey]:
    """Parse a file of one or more keys (armored blocks and/or binary), in file order.

    Raises KeyParseError (one line) for input over the caps, garbage, truncated keys,
    packets that do not belong to a key (messages, bare signatures), or no key at all.
    """
    if len(data) > FILE_BYTES_MAX:
        raise KeyParseError(f"key file is {len(data)} bytes, over {FILE_BYTES_MAX} bytes")
    keys: list[ParsedKey] = []
    if len(packets.armor_blocks(data, KEYS_PER_FILE_MAX + 1)) > KEYS_PER_FILE_MAX:
        raise KeyParseError(f"more than {KEYS_PER_FILE_MAX} armor blocks in one file")
    for chunk in _chunks(data):
        for group in _key_groups(_parse_packets(chunk)):
            keys.append(_build_key(group))
            if len(keys) > KEYS_PER_FILE_MAX:
                raise KeyParseError(f"more than {KEYS_PER_FILE_MAX} keys in one file")
    if not keys:
        raise KeyParseError("no OpenPGP key found")
    return keys


def read_public_cert(cert: bytes) -> ParsedKey:
    """Sequoia's reading of one binary certificate of public packets only (a secret packet
    is refused), for its derived fields: the shorter path of `split_keys` (no armor, no
    secret projection), for the agent's imports and merges. `public_cert` is `cert`
    itself. A single-user-ID key skips the packet walk `split_keys` does to find the
    primary user ID. Raises KeyParseError."""
    if len(cert) > KEY_BYTES_MAX:
        raise KeyParseError(f"key is {len(cert)} bytes, over {KEY_BYTES_MAX} bytes")
    primary = next(packets.iter_packets(cert), None)
    if primary is None or primary[0] not in (6, 5) or packets.has_secret_packet(cert):
        raise KeyParseError("not one public certificate")
    try:
        parsed = pysequoia.Cert.from_bytes(cert)
        user_ids = tuple(str(user_id) for user_id in parsed.user_ids)
        fingerprint = parsed.fingerprint.lower()
        expiration = parsed.expiration
        revoked = parsed.is_revoked
    except BaseException as error:
        raise _parse_error(error) from None
    if len(user_ids) > 1:
        group = _parse_packets(cert)
        user_ids = primary_first(group, user_ids)
        email = first_email(group, user_ids)
    else:
        email = email_of(user_ids[0]) if user_ids else None
    return ParsedKey(
        fingerprint=fingerprint,
        user_ids=user_ids,
        email=email,
        public_cert=cert,
        secret_key=None,
        # Key creation time: octets 1-4 of a v4/v5/v6 key packet (RFC 9580 5.5.2).
        created_unix_s=int.from_bytes(primary[1][1:5], "big"),
        expires_unix_s=None if expiration is None else int(expiration.timestamp()),
        revoked=bool(revoked),
    )


def contains_secret_key_material(data: bytes | str) -> bool:
    """True when `data` (binary or armored OpenPGP, or anything else; str is taken as
    UTF-8) holds a secret key packet, or holds more armor blocks than the check may parse
    (`SEQUOIA_PARSES_PER_CHECK_MAX`: refused rather than vouched for). Never raises;
    non-OpenPGP data gives False. See rule 6 for why two parsers look.
    """
    return _holds_secret(_as_bytes(data), [SEQUOIA_PARSES_PER_CHECK_MAX])


def value_holds_secret(value: Any) -> bool:
    """True if any str or bytes inside a decoded record value (maps, lists, tuples, map
    keys included, at any depth) contains secret key material, as
    `contains_secret_key_material` decides with one parse budget for the whole value.
    Other leaves are ignored.
    """
    budget = [SEQUOIA_PARSES_PER_CHECK_MAX]
    for leaf in packets.value_leaves(value):
        if isinstance(leaf, str) and len(leaf) < packets.BARE_BASE64_CHARACTERS_MIN and (
            leaf.isascii() and leaf.isprintable() and "-----" not in leaf
        ):
            # Names, e-mail addresses, ids: no byte can start a packet or a key version,
            # no armor line, too short for bare base64, and not binary for Sequoia.
            continue
        if _holds_secret(_as_bytes(leaf), budget):
            return True
    return False


def consumer_value(parsed: ParsedKey, *, consumer_type: str | None = None) -> dict[str, Any]:
    """The `consumers` record value (keyed by fingerprint): public data only.

    `consumer_type` is "internal" or "external"; by default a key that came with its
    secret key is internal (the server manages it), any other is external.
    """
    if consumer_type is None:
        consumer_type = "internal" if parsed.secret_key is not None else "external"
    if consumer_type not in _CONSUMER_TYPES:
        raise LocalProtocolError(f"consumer type must be one of {_CONSUMER_TYPES}")
    value: dict[str, Any] = {
        "type": consumer_type,
        "fingerprint": parsed.fingerprint,
        "user_ids": list(parsed.user_ids),
        "email": parsed.email,
        "cert": parsed.public_cert,
        "created_unix_s": parsed.created_unix_s,
        "expires_unix_s": parsed.expires_unix_s,
        "revoked": parsed.revoked,
    }
    # Rule 5; a failure here is a bug of this module, never of the input.
    assert not contains_secret_key_material(parsed.public_cert)
    return value


def private_key_value(parsed: ParsedKey) -> dict[str, Any]:
    """The `private_keys` record value (keyed by fingerprint). The key must have a secret."""
    if parsed.secret_key is None:
        raise LocalProtocolError(f"key {parsed.fingerprint} has no secret key material")
    return {"fingerprint": parsed.fingerprint, "secret_key": parsed.secret_key}


def generate_key(
    user_id: str,
    *,
    with_secret: bool = True,
    extra_user_ids: tuple[str, ...] = (),
    validity_s: int | None = None,
) -> bytes:
    """A fresh Ed25519/Cv25519 key (about a millisecond), ASCII-armored.

    Returns the armored secret key when `with_secret`, else the armored certificate.
    `user_id` is the primary user ID; `validity_s` None means no expiry.
    """
    tsk = pysequoia.Tsk.generate(
        user_ids=[user_id, *extra_user_ids],
        cipher_suite=pysequoia.CipherSuite.Cv25519,
        validity_seconds=validity_s,
    )
    armored = str(tsk) if with_secret else str(tsk.extract_certificate())
    return armored.encode("ascii")


def _holds_secret(data: bytes, budget: list[int]) -> bool:
    """The check behind `contains_secret_key_material`; `budget[0]` counts the Sequoia
    parses left for the whole check and is spent here."""
    try:
        if packets.has_secret_packet(data):
            return True
    except Exception:
        pass  # a walker bug must not crash the caller; Sequoia still looks below
    if len(data) > FILE_BYTES_MAX or not _may_be_openpgp(data):
        return False
    for chunk in _chunks(data):
        if budget[0] <= 0:
            return True
        budget[0] -= 1
        if _sequoia_sees_secret(chunk):
            return True
    return False


def _as_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return bytes(data)


def _chunks(data: bytes) -> Iterator[bytes]:
    """Sequoia reads one armor block per call, so an armored file goes block by block."""
    blocks = packets.armor_blocks(data)
    if blocks:
        for _kind, block in blocks:
            yield block
    else:
        yield data


def _parse_packets(chunk: bytes) -> list[Packet]:
    try:
        return list(PacketPile.from_bytes(chunk))
    except BaseException as error:
        raise _parse_error(error) from None


def _may_be_openpgp(data: bytes) -> bool:
    """Whether Sequoia could find any packet: binary OpenPGP starts with a packet header
    (bit 7 set) and armor needs its dashes. Skipping the rest matters: every failed parse
    costs a Rust error, and with RUST_BACKTRACE set a captured backtrace (about 0.5 ms),
    for each e-mail address and name in a record value."""
    return bool(data) and (data[0] & 0x80 != 0 or b"-----" in data)


def _sequoia_sees_secret(chunk: bytes) -> bool:
    try:
        return any(packet_tag(packet) in _SECRET_TAGS for packet in _parse_packets(chunk))
    except KeyParseError:
        return False


def _key_groups(pile: list[Packet]) -> Iterator[list[Packet]]:
    """Split a packet sequence at each primary key packet; one group per key."""
    group: list[Packet] = []
    for packet in pile:
        tag = packet_tag(packet)
        if tag is None:
            raise KeyParseError("packet with a private or unknown tag: not a key file")
        if tag in _IGNORED_TAGS:
            continue
        if tag not in _KEY_TAGS:
            raise KeyParseError(f"unexpected {_tag_name(tag)} packet: not a key file")
        if tag in _PRIMARY_TAGS:
            if group:
                yield group
            group = []
        elif not group:
            raise KeyParseError(f"{_tag_name(tag)} packet before any primary key")
        group.append(packet)
    if group:
        yield group


def _build_key(group: list[Packet]) -> ParsedKey:
    has_secret = any(packet_tag(packet) in _SECRET_TAGS for packet in group)
    try:
        if has_secret:
            tsk = pysequoia.Tsk.from_packets(group)
            secret_key: bytes | None = bytes(tsk)
            cert = tsk.extract_certificate()
        else:
            secret_key = None
            cert = pysequoia.Cert.from_packets(group)
        public_cert = bytes(cert)
        user_ids = tuple(str(user_id) for user_id in cert.user_ids)
        fingerprint = cert.fingerprint.lower()
        expiration = cert.expiration
        revoked = cert.is_revoked
        created_unix_s = int(group[0].key_created.timestamp())
    except BaseException as error:
        raise _parse_error(error) from None
    if contains_secret_key_material(public_cert):
        # Found by fuzzing: a secret (sub)key packet that Sequoia cannot parse is kept as an
        # opaque packet and serialized verbatim, even by `bytes(cert)`. Refuse the key
        # rather than let secret bytes into the public projection.
        raise KeyParseError(
            f"key {fingerprint} has a malformed secret key packet that would stay in its "
            "public certificate"
        )
    for blob in (public_cert, secret_key or b""):
        if len(blob) > KEY_BYTES_MAX:
            raise KeyParseError(
                f"key {fingerprint} is {len(blob)} bytes, over {KEY_BYTES_MAX} bytes"
            )
    ordered = primary_first(group, user_ids)
    return ParsedKey(
        fingerprint=fingerprint,
        user_ids=ordered,
        email=first_email(group, ordered),
        public_cert=public_cert,
        secret_key=secret_key,
        created_unix_s=created_unix_s,
        expires_unix_s=None if expiration is None else int(expiration.timestamp()),
        revoked=bool(revoked),
    )


def _tag_name(tag: Tag) -> str:
    return str(tag).removeprefix("Tag.")


def _parse_error(error: BaseException) -> BaseException:
    """KeyParseError for a pysequoia failure; interpreter exits pass through unchanged."""
    is_panic = type(error).__name__ == "PanicException"  # pyo3: a Rust panic, BaseException
    if not isinstance(error, Exception) and not is_panic:
        return error
    text = str(error).strip()
    reason = text.splitlines()[0] if text else type(error).__name__
    return KeyParseError(reason[:REASON_CHARACTERS_MAX])
