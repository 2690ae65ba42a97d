"""Finding keys: how operators and OpenPGP clients name a key, and armored keyrings out.

Rules:
1. A key reference is a v4 fingerprint (40 hex digits), a v6 fingerprint (64), or a 64-bit
   key ID (16), in any case, with spaces anywhere and an optional `0x` prefix: what gpg
   prints and what HKP clients send. Short (32-bit) key IDs are not references: they
   collide by design (anyone can make a key that matches one).
2. A key ID is the last 16 hex digits of a v4 fingerprint, the first 16 of a v6 one
   (RFC 9580 5.5.4).
3. `matches` finds text in a consumer-like value's e-mail or user IDs, case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pysequoia

__all__ = ["KeyRef", "armor_keyring", "key_id", "matches", "parse_key_ref"]

_HEX = re.compile(r"[0-9a-f]+")
FINGERPRINT_V4_DIGITS = 40
FINGERPRINT_V6_DIGITS = 64
KEY_ID_DIGITS = 16


@dataclass(frozen=True, slots=True)
class KeyRef:
    """`kind` is "fingerprint" or "key_id"; `hex` is lowercase hex digits."""

    kind: str
    hex: str


def parse_key_ref(text: str) -> KeyRef | None:
    """The key reference `text` names (rule 1), or None if it names none."""
    cleaned = "".join(text.split()).lower()
    cleaned = cleaned.removeprefix("0x")
    if not _HEX.fullmatch(cleaned):
        return None
    if len(cleaned) in (FINGERPRINT_V4_DIGITS, FINGERPRINT_V6_DIGITS):
        return KeyRef("fingerprint", cleaned)
    if len(cleaned) == KEY_ID_DIGITS:
        return KeyRef("key_id", cleaned)
    return None


def key_id(fingerprint: str) -> str:
    """The 16-hex-digit key ID of a fingerprint (rule 2)."""
    fingerprint = fingerprint.lower()
    if len(fingerprint) == FINGERPRINT_V6_DIGITS:
        return fingerprint[:KEY_ID_DIGITS]
    return fingerprint[-KEY_ID_DIGITS:]


def matches(value: Mapping[str, Any], text: str) -> bool:
    """Whether `text` occurs in the value's e-mail or one of its user IDs (rule 3)."""
    needle = text.strip().lower()
    if not needle:
        return False
    email = value.get("email")
    if isinstance(email, str) and needle in email.lower():
        return True
    user_ids = value.get("user_ids")
    return isinstance(user_ids, list) and any(
        isinstance(user_id, str) and needle in user_id.lower() for user_id in user_ids
    )


def armor_keyring(certs: Iterable[bytes]) -> bytes:
    """One ASCII-armored PUBLIC KEY BLOCK holding the binary certificates, in order: a
    keyring `gpg --import` reads."""
    armored = pysequoia.armor(b"".join(certs), pysequoia.ArmorKind.PublicKey)
    return armored.encode("ascii")
