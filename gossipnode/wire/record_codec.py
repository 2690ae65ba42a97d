"""Record batches on the wire (protocol version 4): what the receiver can derive is not sent.

A batch (`tuple[Record, ...]`, the records of a Push or a ReconcileTurn) is the array
`[origins, records]`:

    origins = the distinct origin node ids of the batch (32 bytes each), in order of use
    record  = [dataset, key or null, form, value or null, wall_ms delta, counter,
               origin index, signature or null]

Rules:
1. Versions: `wall_ms` is the difference from the previous record's (the first record's from
   0), so a batch in version order pays a byte or two per stamp; the origin is an index into
   `origins`, so a batch from one writer names it once.
2. Derived fingerprint (`form` 1): the value is sent without its "fingerprint" entry when
   that entry is the fingerprint of the OpenPGP certificate under "cert" (lower-case hex;
   v4: SHA-1, v5 and v6: SHA-256 of the primary key packet, RFC 9580 section 5.5.4). The
   receiver computes it from the certificate and puts it back. `form` 0: the value as it is.
3. Derived key (key null): the key is the value's "fingerprint" entry (after rule 2), as
   for every record keyed by its certificate's fingerprint.
4. The sender derives only what the receiver's reconstruction gives back byte for byte (it
   runs that reconstruction and compares), so a record always arrives exactly as it was:
   a value that is not a canonical map, or whose fingerprint is not its certificate's, is
   simply sent in full.
5. Decoding trusts nothing: every field is checked for type, size and range (the limits of
   the registry), an index must name an origin, a derived field must be derivable, and any
   violation is a `MessageError` that names the field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from ..core.errors import LocalProtocolError, RemoteProtocolError
from ..core.records import COUNTER_MAX, NODE_ID_BYTES, WALL_MS_MAX, Record, Version
from . import cbor

__all__ = ["batch_codec", "certificate_fingerprint"]

FORM_AS_IS = 0
FORM_DERIVED_FINGERPRINT = 1
# An Ed25519 signature (a signed record's `signature`).
SIGNATURE_BYTES = 64
_FIELDS = 8
# Cheap tests before any decoding: a value that holds no "fingerprint" and "cert" map keys
# (as canonical CBOR text) has nothing to derive.
_FINGERPRINT_KEY = b"\x6bfingerprint"
_CERT_KEY = b"\x64cert"


def certificate_fingerprint(cert: bytes) -> str | None:
    """The fingerprint of the primary key packet that `cert` starts with, in lower-case
    hex; None if it does not start with a public-key packet of version 4, 5 or 6."""
    if len(cert) < 2 or not cert[0] & 0x80:
        return None
    first = cert[0]
    if first & 0x40:  # new packet format
        tag, octet = first & 0x3F, cert[1]
        if octet < 192:
            length, header = octet, 2
        elif octet < 224 and len(cert) > 2:
            length, header = ((octet - 192) << 8) + cert[2] + 192, 3
        elif octet == 255 and len(cert) >= 6:
            length, header = int.from_bytes(cert[2:6], "big"), 6
        else:
            return None  # partial lengths are not allowed for a key packet
    else:  # old packet format
        tag, kind = (first >> 2) & 0x0F, first & 0x03
        if kind == 3:
            return None
        size = 1 << kind
        length, header = int.from_bytes(cert[1:1 + size], "big"), 1 + size
    body = cert[header:header + length]
    if tag != 6 or length == 0 or len(body) != length:
        return None
    if body[0] == 4 and length < 1 << 16:
        return hashlib.sha1(b"\x99" + length.to_bytes(2, "big") + body).hexdigest()
    if body[0] in (5, 6):
        prefix = b"\x9a" if body[0] == 5 else b"\x9b"
        return hashlib.sha256(prefix + length.to_bytes(4, "big") + body).hexdigest()
    return None


def _restore(stripped: bytes) -> bytes | None:
    """Rule 2, receiving side: the value with its derived fingerprint put back; None if the
    stripped value is not a canonical map with a certificate to derive it from."""
    try:
        value = cbor.decode_value(stripped)
    except cbor.CborError:
        return None
    cert = value.get("cert")
    if "fingerprint" in value or type(cert) is not bytes:
        return None
    fingerprint = certificate_fingerprint(cert)
    if fingerprint is None:
        return None
    value["fingerprint"] = fingerprint
    return cbor.encode(value)


def _derive(value: bytes) -> bytes | None:
    """Rule 4, sending side: the value without its fingerprint, if `_restore` gives `value`
    back exactly; else None."""
    if _FINGERPRINT_KEY not in value or _CERT_KEY not in value:
        return None
    try:
        mapping = cbor.decode_value(value)
    except cbor.CborError:
        return None
    if type(mapping.pop("fingerprint", None)) is not str:
        return None
    stripped = cbor.encode(mapping)
    return stripped if _restore(stripped) == value else None


def _fingerprint_of(value: bytes) -> str | None:
    try:
        fingerprint = cbor.decode_value(value).get("fingerprint")
    except cbor.CborError:
        return None
    return fingerprint if type(fingerprint) is str else None


def batch_codec(
    where: str, *, items_max: int, text_bytes_max: int, bytes_max: int,
    error: Callable[[str], RemoteProtocolError],
) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """The encoder and decoder of a `tuple[Record, ...]` field named `where`."""

    def encode(records: Any) -> Any:
        if type(records) is not tuple or len(records) > items_max:
            raise LocalProtocolError(f"{where}: expected a tuple of at most {items_max} records")
        origins: dict[bytes, int] = {}
        rows = []
        previous = 0
        for record in records:
            if type(record) is not Record or type(record.version) is not Version:
                raise LocalProtocolError(f"{where}: expected Record, got {type(record).__name__}")
            version, value, form = record.version, record.value, FORM_AS_IS
            if value is not None:
                stripped = _derive(value)
                if stripped is not None:
                    value, form = stripped, FORM_DERIVED_FINGERPRINT
            key: str | None = record.key
            # (The key's bytes are in an encoded value whose fingerprint equals it: most
            # values are not decoded for this.)
            if (record.value is not None
                    and record.key.encode("utf-8", "surrogatepass") in record.value
                    and record.key == _fingerprint_of(record.value)):
                key = None
            index = origins.setdefault(version.origin, len(origins))
            rows.append([record.dataset, key, form, value, version.wall_ms - previous,
                         version.counter, index, record.signature])
            previous = version.wall_ms
        return [list(origins), rows]

    def decode(raw: Any) -> Any:
        if not isinstance(raw, list) or len(raw) != 2:
            raise error(f"{where}: expected [origins, records]")
        origins, rows = raw
        if not isinstance(origins, list) or not isinstance(rows, list):
            raise error(f"{where}: expected [origins, records]")
        if len(rows) > items_max or len(origins) > len(rows):
            raise error(f"{where}: {len(rows)} records and {len(origins)} origins")
        for origin in origins:
            if type(origin) is not bytes or len(origin) != NODE_ID_BYTES:
                raise error(f"{where}.origins: expected {NODE_ID_BYTES} bytes each")
        records = []
        previous = 0
        for position, row in enumerate(rows):
            records.append(_decode_row(f"{where}[{position}]", row, origins, previous))
            previous = records[-1].version.wall_ms
        return tuple(records)

    def _decode_row(at: str, row: Any, origins: list[bytes], previous: int) -> Record:
        if not isinstance(row, list) or len(row) != _FIELDS:
            raise error(f"{at}: expected an array of {_FIELDS} fields")
        dataset, key, form, value, delta, counter, index, signature = row
        if type(dataset) is not str or not 0 < len(dataset.encode()) <= text_bytes_max:
            raise error(f"{at}.dataset: expected a name of 1 to {text_bytes_max} bytes")
        if key is not None and (type(key) is not str
                                or not 0 < len(key.encode()) <= text_bytes_max):
            raise error(f"{at}.key: expected null or a key of 1 to {text_bytes_max} bytes")
        if value is not None and (type(value) is not bytes or len(value) > bytes_max):
            raise error(f"{at}.value: expected null or at most {bytes_max} bytes")
        if form == FORM_DERIVED_FINGERPRINT and type(form) is int and value is not None:
            value = _restore(value)
            if value is None:
                raise error(f"{at}.value: no certificate to derive the fingerprint from")
        elif form != FORM_AS_IS or type(form) is not int:
            raise error(f"{at}.form: {form!r} is not a form of this protocol")
        if key is None:
            key = None if value is None else _fingerprint_of(value)
            if not key or len(key.encode()) > text_bytes_max:
                raise error(f"{at}.key: derived, but the value has no fingerprint")
        if type(delta) is not int or not 0 <= previous + delta <= WALL_MS_MAX:
            raise error(f"{at}.wall_ms: out of range")
        if type(counter) is not int or not 0 <= counter <= COUNTER_MAX:
            raise error(f"{at}.counter: out of range")
        if type(index) is not int or not 0 <= index < len(origins):
            raise error(f"{at}.origin: index {index!r} names no origin")
        if signature is not None and (type(signature) is not bytes
                                      or len(signature) != SIGNATURE_BYTES):
            raise error(f"{at}.signature: expected null or {SIGNATURE_BYTES} bytes")
        return Record(dataset, key, value, Version(previous + delta, counter, origins[index]),
                      signature)

    return encode, decode
