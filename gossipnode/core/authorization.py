"""Authorised writes and admission as NodeCore applies them: the narrow hooks between the
node and `authority` (who may write what) and `scopes` (who may hold what).

Rules:
1. A record from a peer is taken only if the peer is admitted (administrative records
   excepted: their signature speaks for them, whoever relays them) and the record passes
   `Authority.refusal` (signature and grants of its origin).
2. A local write of an administrative record is refused under administrators: it must come
   signed from the CLI (`write_signed`), which holds the administrator's key. A local write
   of a private key is signed with this node's identity key, so that every member can check
   that its origin was granted private keys.
3. The policy is built only from administrative records that verify (rule 1 of
   core/authority.py), also those that were stored before the keys were pinned.
4. The member where an administrator admits a live member sends the newcomer every
   administrative record at once: it learns who else is admitted, so that it takes their
   data, without waiting for a reconciliation round. (Only there: every member doing so
   would send the newcomer n copies. Elsewhere reconciliation brings them: "receive".)
5. Private keys written before the cluster had administrators carry no signature, and those
   written by a member that lost its grant no longer pass: a member granted private keys
   re-signs them on the operator's request (`gossipnode admin adopt`), writing each anew
   under its own signature, so that they replicate again.
6. When a member loses its private-keys grant, every member still granted re-signs at once
   the private keys it holds that the lost member wrote (`revoked_writers`): they were
   accepted while it was granted, and must keep replicating (a newcomer would refuse the
   old signature). What the revoked member sends later is refused, its handoff of the keys
   it wrote too, and it removes them then (core/handoff.py rule 4): the members still
   granted hold them re-signed.
7. Membership follows admission (core/membership/pending.py): under administrators a node
   id not admitted never enters the member table of an admitted member; it waits in the
   small bounded pending set, which it leaves once admitted (its next confirmation ping)
   or forgets. A member not admitted itself (a newcomer, or one whose admission was
   revoked) keeps everyone, since it must meet the cluster to learn its grants. A member
   already in the table when its admission is revoked stays until it dies or leaves; it
   holds nothing (rule 1, scopes.py). Open clusters admit everyone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from .authority import ADMIN_DATASETS, SIGNED_DATASETS, Authority, signing_payload
from .errors import LocalProtocolError
from .placement import POLICY_DATASET, ClusterPolicy, policy_from_records
from .records import Record
from .scopes import ScopeView
from .store import RecordStore

__all__ = [
    "admin_records",
    "load_policy",
    "local_write_check",
    "member_admitted",
    "newly_admitted",
    "peer_refusal",
    "revoked_writers",
    "sign_local",
    "unauthorised_private_keys",
]


def load_policy(store: RecordStore, authority: Authority,
                decode_value: Callable[[bytes], Mapping[str, Any]]) -> ClusterPolicy:
    valid = authority.admin_record_valid if authority.enforced else None
    return policy_from_records(store.replicated(POLICY_DATASET), decode_value, valid)


def member_admitted(policy: ClusterPolicy, self_id: bytes, node_id: bytes) -> bool:
    """May `node_id` enter this node's member table (rule 7)?"""
    return not policy.enforced or policy.admitted(node_id) or not policy.admitted(self_id)


def peer_refusal(sender: bytes, record: Record, view: ScopeView,
                 authority: Authority) -> str | None:
    """Why a record `sender` sent must not be stored (rule 1), or None."""
    if record.dataset not in ADMIN_DATASETS and not view.admitted(sender):
        return "the sending member is not admitted"
    return authority.refusal(record, view.policy.granted)


def local_write_check(dataset: str, authority: Authority) -> None:
    """Rule 2: raise LocalProtocolError for a local write that needs the CLI's signature."""
    if authority.enforced and dataset in ADMIN_DATASETS:
        raise LocalProtocolError(
            f"{dataset} records must be signed by an administrator: use the gossipnode "
            "verbs with --admin-key (or GOSSIPNODE_ADMIN_KEY)"
        )


def sign_local(record: Record, sign: Callable[[bytes], bytes]) -> Record:
    """Rule 2: a restricted record written here carries this node's signature."""
    if record.dataset not in SIGNED_DATASETS or record.dataset in ADMIN_DATASETS:
        return record
    payload = signing_payload(record.dataset, record.key, record.version, record.value)
    return replace(record, signature=sign(payload))


def newly_admitted(before: ScopeView, after: ScopeView) -> list[bytes]:
    """Live peers admitted in `after` and not in `before` (rule 4). None in an open
    cluster, where nobody waits for an admission."""
    if not after.policy.enforced:
        return []
    return [peer for peer in after.peers() if after.admitted(peer) and not before.admitted(peer)]


def admin_records(store: RecordStore, authority: Authority) -> list[Record]:
    """Every administrative record this node holds that verifies (rule 4)."""
    return [
        record for dataset in sorted(ADMIN_DATASETS) for record in store.replicated(dataset)
        if not authority.enforced or authority.admin_record_valid(record)
    ]


def unauthorised_private_keys(store: RecordStore, authority: Authority,
                              granted: Callable[[bytes, str], bool]) -> list[Record]:
    """The private keys held here that other members would refuse (rule 5): written before
    grants existed, unsigned, or by a member whose grant is gone."""
    if not authority.enforced:
        return []
    return [record for record in store.replicated("private_keys")
            if authority.refusal(record, granted) is not None]


def revoked_writers(before: ClusterPolicy, after: ClusterPolicy) -> frozenset[bytes]:
    """Members that could write private keys under `before` and cannot under `after`."""
    if not after.enforced:
        return frozenset()

    def writer(policy: ClusterPolicy, node_id: bytes) -> bool:
        return policy.admitted(node_id) and policy.granted(node_id, "private_keys")

    return frozenset(n for n in before.grants if writer(before, n) and not writer(after, n))
