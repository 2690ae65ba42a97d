"""Who may hold what, by truth: the checkers' own model of eligibility and placement.

Written from the rules as docs/architecture.md and the policy record format state them,
never from the core's code (gossipnode/core/placement.py and scopes.py are what is under
test; importing them would make a bug there invisible to the checkers):

- A member may hold private keys when its own `private_keys` tag is "true" AND the
  cluster policy does not deny it (`private_keys/<node id hex>` = {"allow": false}).
- A WEP mailbox (keys `mailbox` and `mailbox/message`) lives on R members: of the live
  members whose `wep` tag is "true" (and, when the policy names an eligible subset, whose
  name is in it), the R whose rendezvous weight for the mailbox is highest. The weight of
  member m for mailbox x is the 16-byte BLAKE2b digest, personalised "gossipnode-wep", of
  m's node id followed by x in UTF-8, compared as a big-endian unsigned number.
- Policy record `wep` = {"replication": bool, "replicas": int >= 1 (at most 16),
  "eligible": [name, ...]}: fields that are missing or malformed keep their defaults
  (replication on, R = 2, every WEP member); an empty list names no subset. With
  replication off, mailboxes are not placed at all.

The model is slow and plain on purpose: one digest per candidate, a full sort.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gossipnode.core.records import Record
from gossipnode.wire.cbor import CborError, decode_value

__all__ = [
    "POLICY_DATASET",
    "PRIVATE_KEYS_POLICY_PREFIX",
    "WEP_POLICY_KEY",
    "TruthPolicy",
    "mailbox_of",
    "may_hold_private_keys",
    "owners",
]

POLICY_DATASET = "cluster_policy"
PRIVATE_KEYS_POLICY_PREFIX = "private_keys/"
WEP_POLICY_KEY = "wep"
DEFAULT_REPLICAS = 2
REPLICAS_MAX = 16
WEIGHT_PERSON = b"gossipnode-wep"
WEIGHT_BYTES = 16


@dataclass(frozen=True, slots=True)
class TruthPolicy:
    denied: frozenset[bytes] = frozenset()
    wep_replication: bool = True
    wep_replicas: int = DEFAULT_REPLICAS
    wep_eligible: frozenset[str] | None = None

    @classmethod
    def from_records(cls, records: Iterable[Record]) -> TruthPolicy:
        """The policy the acknowledged `cluster_policy` records (latest per key) say."""
        denied: set[bytes] = set()
        replication, replicas, eligible = True, DEFAULT_REPLICAS, None
        for record in records:
            value = _decoded(record)
            if value is None:
                continue
            if record.key.startswith(PRIVATE_KEYS_POLICY_PREFIX):
                try:
                    node_id = bytes.fromhex(record.key[len(PRIVATE_KEYS_POLICY_PREFIX):])
                except ValueError:
                    continue
                if value.get("allow") is False:
                    denied.add(node_id)
            elif record.key == WEP_POLICY_KEY:
                if type(value.get("replication")) is bool:
                    replication = value["replication"]
                if type(value.get("replicas")) is int and value["replicas"] >= 1:
                    replicas = min(value["replicas"], REPLICAS_MAX)
                names = value.get("eligible")
                if type(names) is list and all(type(name) is str for name in names):
                    eligible = frozenset(names) if names else None
        return cls(frozenset(denied), replication, replicas, eligible)


def _decoded(record: Record) -> Mapping[str, Any] | None:
    if record.value is None:
        return None
    try:
        return decode_value(record.value)
    except CborError:
        return None


def may_hold_private_keys(node_id: bytes, tags: Mapping[str, str],
                          policy: TruthPolicy) -> bool:
    return tags.get("private_keys") == "true" and node_id not in policy.denied


def mailbox_of(key: str) -> str:
    """`mailbox/message` and `mailbox` both belong to `mailbox`."""
    slash = key.find("/")
    return key if slash < 0 else key[:slash]


def owners(mailbox: str, members: Iterable[tuple[bytes, str, Mapping[str, str]]],
           policy: TruthPolicy) -> frozenset[bytes] | None:
    """The node ids that must hold `mailbox`, given the live members as (node id, name,
    tags); None when WEP replication is off."""
    if not policy.wep_replication:
        return None
    weighted = []
    for node_id, name, tags in members:
        if tags.get("wep") != "true":
            continue
        if policy.wep_eligible is not None and name not in policy.wep_eligible:
            continue
        digest = hashlib.blake2b(node_id + mailbox.encode("utf-8"), digest_size=WEIGHT_BYTES,
                                 person=WEIGHT_PERSON).digest()
        weighted.append((int.from_bytes(digest, "big"), node_id))
    weighted.sort(reverse=True)
    return frozenset(node_id for _, node_id in weighted[:policy.wep_replicas])
