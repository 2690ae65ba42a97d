"""What a certificate says about itself, read from Sequoia's packets: the primary user ID
and the e-mail address (the derived fields of a `consumers` value, with keys.py).

Best effort by design: a packet attribute pysequoia cannot read (an unknown signature type,
an unparsable user ID) counts as absent; Sequoia has already accepted the key as a whole.
"""

from __future__ import annotations

import re
from typing import Any

from pysequoia.packet import Packet, SignatureType, Tag

__all__ = ["email_of", "first_email", "packet_tag", "primary_first", "read"]

_SELF_CERTIFICATIONS = (
    SignatureType.GenericCertification, SignatureType.PersonaCertification,
    SignatureType.CasualCertification, SignatureType.PositiveCertification,
)

_NAME_ADDR = re.compile(r"<([^<>\s]+@[^<>\s]+)>\s*$")
_ADDR_SPEC = re.compile(r"[^<>\s@]+@[^<>\s@]+")


def email_of(user_id: str) -> str | None:
    """The address of "Name <addr>" or of a bare address, as Sequoia reads common user IDs."""
    match = _NAME_ADDR.search(user_id)
    if match:
        return match.group(1)
    return user_id if _ADDR_SPEC.fullmatch(user_id) else None


def packet_tag(packet: Packet) -> Tag | None:
    """The packet's tag; None for tags pysequoia has no name for (private, unknown),
    where reading `.tag` raises RuntimeError."""
    try:
        return packet.tag
    except Exception:
        return None


def primary_first(group: list[Packet], user_ids: tuple[str, ...]) -> tuple[str, ...]:
    """Move the user ID whose newest self-certification sets the primary flag to the
    front (the newest such one if several do); otherwise keep Sequoia's order."""
    primary_fingerprint = (read(group[0], "fingerprint") or "").lower()
    newest: dict[str, tuple[Any, bool]] = {}  # user ID -> (signature time, primary flag)
    current: str | None = None
    for packet in group:
        tag = packet_tag(packet)
        if tag == Tag.UserID:
            current = read(packet, "user_id")
        elif tag != Tag.Signature:
            current = None
        elif current is not None and _is_self_certification(packet, primary_fingerprint):
            created = read(packet, "signature_created")
            if created is not None and (current not in newest or created >= newest[current][0]):
                newest[current] = (created, bool(read(packet, "primary_userid")))
    flagged = [(created, uid) for uid, (created, flag) in newest.items() if flag]
    if not flagged:
        return user_ids
    primary = max(flagged)[1]
    if primary not in user_ids:
        return user_ids
    return (primary, *(uid for uid in user_ids if uid != primary))


def _is_self_certification(signature: Packet, primary_fingerprint: str) -> bool:
    if not primary_fingerprint:
        return False
    if read(signature, "signature_type") not in _SELF_CERTIFICATIONS:
        return False
    issuer = read(signature, "issuer_fingerprint")
    if issuer is not None:
        return issuer.lower() == primary_fingerprint
    key_id = read(signature, "issuer_key_id")
    return key_id is not None and primary_fingerprint.endswith(key_id.lower())


def first_email(group: list[Packet], user_ids: tuple[str, ...]) -> str | None:
    emails: dict[str, str] = {}
    for packet in group:
        if packet_tag(packet) == Tag.UserID:
            user_id, email = read(packet, "user_id"), read(packet, "user_id_email")
            if user_id is not None and email:
                emails.setdefault(user_id, email)
    return next((emails[uid] for uid in user_ids if uid in emails), None)


def read(packet: Packet, attribute: str) -> Any:
    """A packet attribute, or None where pysequoia cannot read it (an unknown signature
    type or an unparsable user ID raises RuntimeError). Metadata is best effort; Sequoia
    has already accepted the key as a whole."""
    try:
        return getattr(packet, attribute)
    except Exception:
        return None
