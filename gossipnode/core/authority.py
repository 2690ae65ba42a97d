"""Authority: administrator keys, signed records, grants and admission (invariant 8).

Rules:
1. Enforcement. The cluster is governed by administrators when at least one administrator
   public key is pinned (`NodeConfig.admin_keys`). With none pinned it runs open, as before
   grants existed: every holder of the cluster secret is trusted (status says so).
2. Signed records. A record of a signed dataset carries `Record.signature`, the Ed25519
   signature made by the key `version.origin` over `signing_payload` (dataset, key, version,
   value digest). Who may be that origin:
   - administrative datasets (`cluster_policy`: policy, grants, admissions): a pinned
     administrator key. The CLI signs with the administrator's secret key, which never
     reaches a node; the node only checks.
   - restricted datasets (`private_keys`): a member granted `admitted` and `private_keys`.
   The version is inside the signature, so a signed statement cannot be stamped anew: an
   old grant replayed keeps its old version and loses to the revocation that followed it.
   Every receiver checks, however the record arrives (a push, a forward, anti-entropy),
   against the grants it knows NOW, not those at the record's version: a version is the
   writer's own claim, and a revoked member could date its writes before its revocation.
   What a member wrote while it was granted stays valid because the members still granted
   sign it anew when it is revoked (authorization.py rule 6).
3. Grants are bound to node ids, never to names or tags: the `cluster_policy` record
   `grant/<node id hex>` = {"admitted": bool, "private_keys": bool, "wep": bool}. No record,
   no grant: a member nobody admitted gets nothing.
   A grant or force-leave record names its subject in its key (`subject_of`): the member whose
   grants it changes, to which it is always sent (core/scopes.py rule 5). Only the spelling
   `grant_key` and `force_left_key` write names a member: 64 lowercase hex digits. Any other
   (`grant/AB…`, a space or a newline among the digits, a short id) names nobody and grants
   nothing; were `grant/AB…` and `grant/ab…` the same member, which of the two counted would
   depend on the order records are read.
4. A verified signature is cached by the digest of what it signs, and never checked twice;
   the cache is bounded.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from .records import NODE_ID_BYTES, Record, Version

__all__ = [
    "ADMIN_DATASETS",
    "FORCE_LEFT_PREFIX",
    "GRANTS",
    "GRANT_PREFIX",
    "SIGNED_DATASETS",
    "Authority",
    "force_left_bound",
    "force_left_key",
    "grant_key",
    "grants_from_value",
    "signing_payload",
    "subject_of",
]

ADMIN_DATASETS = frozenset({"cluster_policy"})
RESTRICTED_DATASETS = frozenset({"private_keys"})
SIGNED_DATASETS = ADMIN_DATASETS | RESTRICTED_DATASETS
GRANT_PREFIX = "grant/"
# `force_left/<node id hex>` = {"incarnation": N}: an administrator forced the member out at
# incarnation N or below (core/membership/state.py rule 9).
FORCE_LEFT_PREFIX = "force_left/"
ADMITTED, PRIVATE_KEYS_GRANT, WEP_GRANT = "admitted", "private_keys", "wep"
GRANTS = (ADMITTED, PRIVATE_KEYS_GRANT, WEP_GRANT)
# Verified signatures remembered (16-byte digests): far more than the administrative records
# and private keys a cluster holds at once, about 2 MiB at most.
VERIFIED_CACHE_MAX = 65_536
_DOMAIN = b"gossipnode signed record v1"

Verify = Callable[[bytes, bytes, bytes], bool]


def signing_payload(dataset: str, key: str, version: Version, value: bytes | None) -> bytes:
    """The bytes a signed record's signature covers: each field length-prefixed, the value
    by its BLAKE2b digest (a tombstone by a marker), so no two records share a payload."""
    digest = b"\x00" if value is None else b"\x01" + hashlib.blake2b(value).digest()
    parts = (
        _DOMAIN, dataset.encode(), key.encode(), version.wall_ms.to_bytes(8, "big"),
        version.counter.to_bytes(4, "big"), version.origin, digest,
    )
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def grant_key(node_id: bytes) -> str:
    return GRANT_PREFIX + node_id.hex()


def force_left_key(node_id: bytes) -> str:
    return FORCE_LEFT_PREFIX + node_id.hex()


def subject_of(dataset: str, key: str) -> bytes | None:
    """The member an administrative record is about (rule 3): the node id its key names
    (`grant/<hex>`, `force_left/<hex>`), or None (the WEP policy, a malformed key)."""
    if dataset not in ADMIN_DATASETS:
        return None
    for prefix in (GRANT_PREFIX, FORCE_LEFT_PREFIX):
        if key.startswith(prefix):
            digits = key[len(prefix):]
            try:  # core/placement.py `policy_from_records` reads grants with this too
                node_id = bytes.fromhex(digits)
            except ValueError:
                return None
            # rule 3: the one spelling grant_key writes (fromhex also takes capitals and spaces)
            if len(node_id) != NODE_ID_BYTES or node_id.hex() != digits:
                return None
            return node_id
    return None


def force_left_bound(value: Mapping[str, Any]) -> int | None:
    """The incarnation bound a force-leave record's value gives, or None if malformed."""
    bound = value.get("incarnation")
    if type(bound) is not int or not 0 <= bound < 2**64:
        return None
    return bound


def grants_from_value(value: Mapping[str, Any]) -> frozenset[str]:
    """The grants a grant record's value gives; anything but a literal true is no grant."""
    return frozenset(name for name in GRANTS if value.get(name) is True)


class Authority:
    """Checks signed records against the pinned administrator keys and the grants.

    `verify(public_key, message, signature) -> bool` is injected (the core does no crypto).
    """

    def __init__(self, admin_keys: tuple[bytes, ...], verify: Verify) -> None:
        self.admin_keys = frozenset(admin_keys)
        self.verify = verify
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self.checks = 0
        self.cache_hits = 0

    @property
    def enforced(self) -> bool:
        return bool(self.admin_keys)

    def signature_valid(self, record: Record) -> bool:
        """Does `record.signature` verify for `record.version.origin`? (Cached.)"""
        if record.signature is None:
            return False
        payload = signing_payload(record.dataset, record.key, record.version, record.value)
        digest = hashlib.blake2b(payload + record.signature, digest_size=16).digest()
        if digest in self._verified:
            self.cache_hits += 1
            self._verified.move_to_end(digest)
            return True
        self.checks += 1
        if not self.verify(record.version.origin, payload, record.signature):
            return False
        self._verified[digest] = None
        if len(self._verified) > VERIFIED_CACHE_MAX:
            self._verified.popitem(last=False)
        return True

    def admin_record_valid(self, record: Record) -> bool:
        """An administrative record signed by a pinned administrator key."""
        return record.version.origin in self.admin_keys and self.signature_valid(record)

    def refusal(self, record: Record, granted: Callable[[bytes, str], bool]) -> str | None:
        """Why a record may not be stored here (None: it may), by rule 2. `granted(node id,
        grant)` answers from the current grants. Open clusters check nothing."""
        if not self.enforced or record.dataset not in SIGNED_DATASETS:
            return None
        if record.dataset in ADMIN_DATASETS:
            if record.version.origin not in self.admin_keys:
                return "an administrative record not signed by a pinned administrator key"
            if not self.signature_valid(record):
                return "an administrative record with a bad administrator signature"
            return None
        origin = record.version.origin
        if not (granted(origin, ADMITTED) and granted(origin, PRIVATE_KEYS_GRANT)):
            return "written by a member not granted private keys"
        if not self.signature_valid(record):
            return "a private key record whose origin signature does not verify"
        return None

    def statistics(self) -> dict[str, int]:
        return {"signatures_checked": self.checks, "signatures_cached": self.cache_hits}
