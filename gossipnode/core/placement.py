"""Who may hold what: private-key eligibility and WEP mailbox placement (docs/architecture.md).

Rules:
1. A member is eligible for private keys when its own opt-in tag `private_keys` says "true"
   AND the cluster policy allows it. Either can say no. Under administrators (pinned keys,
   core/authority.py) "allows" means a signed grant names the member's node id with
   `admitted` and `private_keys`: no grant, no private keys. In an open cluster it means
   "not denied".
2. A WEP mailbox (records `mailbox` and `mailbox/message`) is owned by the top `replicas`
   candidates by rendezvous (highest-random-weight) hashing of the mailbox id, where the
   candidates are the members that are not dead or gone, advertise `wep = "true"`, and
   hold the grants `admitted` and `wep` (under administrators) or are in the policy's
   eligible subset of names when one is set (open cluster). Membership changes therefore
   move only the mailboxes whose top-R set changed.
3. With WEP replication off, mailboxes are not replicated: each stays on the member where it
   was written (`mailbox_owners` returns None and the caller keeps its own copy).
4. The policy lives in the replicated `cluster_policy` dataset, so every member computes the
   same answers once it holds the same policy records and member list.

Policy records (values are maps):
- key `grant/<node id hex>`: {"admitted": bool, "private_keys": bool, "wep": bool}
  (under administrators only; signed, see core/authority.py)
- key `force_left/<node id hex>`: {"incarnation": int} (under administrators only; signed):
  the member is forced out at that incarnation or below (core/membership/state.py rule 9)
- key `private_keys/<node id hex>`: {"allow": bool} (open cluster only)
- key `wep`: {"replication": bool, "replicas": int, "eligible": [member name, ...] (optional,
  open cluster only: names are self-asserted, so under administrators the wep grant decides)}
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .authority import (
    ADMITTED,
    FORCE_LEFT_PREFIX,
    GRANT_PREFIX,
    PRIVATE_KEYS_GRANT,
    WEP_GRANT,
    force_left_bound,
    grants_from_value,
    subject_of,
)
from .records import Record

__all__ = [
    "POLICY_DATASET",
    "Candidate",
    "ClusterPolicy",
    "mailbox_id",
    "mailbox_owners",
    "policy_from_records",
    "private_keys_eligible",
    "tag_enabled",
    "wep_candidates",
]

POLICY_DATASET = "cluster_policy"
PRIVATE_KEYS_POLICY_PREFIX = "private_keys/"
WEP_POLICY_KEY = "wep"
# Two copies survive the loss of any one WEP member; more cost storage on every message.
DEFAULT_WEP_REPLICAS = 2
# A policy asking for more replicas than this is clamped: placement cost grows with R.
WEP_REPLICAS_MAX = 16


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    private_keys_denied: frozenset[bytes] = frozenset()
    wep_replication: bool = True
    wep_replicas: int = DEFAULT_WEP_REPLICAS
    # Member names allowed to hold mailboxes; None means every WEP member.
    wep_eligible: frozenset[str] | None = None
    # Under administrators: grants decide (rule 1, 2); the signed grants by node id.
    enforced: bool = False
    grants: Mapping[bytes, frozenset[str]] = field(default_factory=dict)
    # Under administrators: node id -> incarnation bound of a signed force-leave.
    force_left: Mapping[bytes, int] = field(default_factory=dict)

    def granted(self, node_id: bytes, grant: str) -> bool:
        """Does `node_id` hold `grant`? In an open cluster every member holds every grant."""
        return not self.enforced or grant in self.grants.get(node_id, ())

    def admitted(self, node_id: bytes) -> bool:
        return self.granted(node_id, ADMITTED)


@dataclass(frozen=True, slots=True)
class Candidate:
    """What placement needs to know about one member."""

    node_id: bytes
    name: str
    tags: Mapping[str, str]


def tag_enabled(tags: Mapping[str, str], name: str) -> bool:
    return tags.get(name) == "true"


def private_keys_eligible(node_id: bytes, tags: Mapping[str, str], policy: ClusterPolicy) -> bool:
    if not tag_enabled(tags, "private_keys"):
        return False
    if policy.enforced:
        return policy.admitted(node_id) and policy.granted(node_id, PRIVATE_KEYS_GRANT)
    return node_id not in policy.private_keys_denied


def wep_candidates(members: Iterable[Candidate], policy: ClusterPolicy) -> list[Candidate]:
    """Members that may own mailboxes; the caller passes only members not dead or gone."""
    if policy.enforced:
        return [
            member for member in members
            if tag_enabled(member.tags, "wep") and policy.admitted(member.node_id)
            and policy.granted(member.node_id, WEP_GRANT)
        ]
    return [
        member
        for member in members
        if tag_enabled(member.tags, "wep")
        and (policy.wep_eligible is None or member.name in policy.wep_eligible)
    ]


def mailbox_id(key: str) -> str:
    """The mailbox a web_messenger key belongs to: `mailbox` or `mailbox/message`."""
    return key.split("/", 1)[0]


def mailbox_owners(
    mailbox: str, candidates: Iterable[Candidate], policy: ClusterPolicy
) -> tuple[bytes, ...] | None:
    """The node ids that own `mailbox`, best first; None when replication is off."""
    if not policy.wep_replication:
        return None
    encoded = mailbox.encode()
    ranked = sorted(
        candidates,
        key=lambda member: hashlib.blake2b(
            member.node_id + encoded, digest_size=16, person=b"gossipnode-wep"
        ).digest(),
        reverse=True,
    )
    return tuple(member.node_id for member in ranked[: policy.wep_replicas])


def policy_from_records(
    records: Iterable[Record], decode_value: Callable[[bytes], Mapping[str, Any]],
    admin_valid: Callable[[Record], bool] | None = None,
) -> ClusterPolicy:
    """Build the policy from the `cluster_policy` records; malformed entries are ignored
    (they were validated when written, and a bad one must not stop replication).

    `admin_valid` is given under administrators: only records it accepts count (a record
    stored before the keys were pinned is ignored), grants replace the open cluster's
    private-key denials and WEP names."""
    denied = set()
    grants: dict[bytes, frozenset[str]] = {}
    force_left: dict[bytes, int] = {}
    enforced = admin_valid is not None
    replication, replicas, eligible = True, DEFAULT_WEP_REPLICAS, None
    for record in records:
        if record.dataset != POLICY_DATASET or record.value is None:
            continue
        if admin_valid is not None and not admin_valid(record):
            continue
        try:
            value = decode_value(record.value)
        except ValueError:
            continue
        if enforced and record.key.startswith((GRANT_PREFIX, FORCE_LEFT_PREFIX)):
            node_id = subject_of(POLICY_DATASET, record.key)  # the member the key names
            if node_id is None:
                continue
            if record.key.startswith(GRANT_PREFIX):
                grants[node_id] = grants_from_value(value)
            else:
                bound = force_left_bound(value)
                if bound is not None:
                    force_left[node_id] = bound
        elif enforced and record.key.startswith(PRIVATE_KEYS_POLICY_PREFIX):
            continue
        elif record.key.startswith(PRIVATE_KEYS_POLICY_PREFIX):
            try:
                node_id = bytes.fromhex(record.key[len(PRIVATE_KEYS_POLICY_PREFIX) :])
            except ValueError:
                continue
            if value.get("allow") is False:
                denied.add(node_id)
        elif record.key == WEP_POLICY_KEY:
            if isinstance(value.get("replication"), bool):
                replication = value["replication"]
            if type(value.get("replicas")) is int and value["replicas"] >= 1:
                replicas = min(value["replicas"], WEP_REPLICAS_MAX)
            names = value.get("eligible")
            if not enforced and isinstance(names, list) and all(
                isinstance(n, str) for n in names
            ):
                eligible = frozenset(names) if names else None
    return ClusterPolicy(frozenset(denied), replication, replicas, eligible, enforced, grants,
                         force_left)
