"""The cluster policy as the administrator signs it: a member's grants, read and changed as
one signed record, and `policy private-keys` and `policy wep` under administrators.

Grants name node ids, never names (a name is whatever a member says it is): `gossipnode init`
prints the node id to admit, `gossipnode members --json` lists them.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..cli import UsageError
from ..client import ClientError
from .admin_key import AdminKey, load_admin_key, sign_and_put
from .connection import request

__all__ = ["change_grants", "current_grants", "grant_node_id", "policy_signed"]


def current_grants(args: argparse.Namespace, node_id: bytes) -> dict[str, bool]:
    from ..core.authority import GRANTS, grant_key
    from ..core.placement import POLICY_DATASET

    try:
        record = request(args, "get", dataset=POLICY_DATASET, key=grant_key(node_id))
    except ClientError as error:
        if error.exit_code != 1:
            raise
        return dict.fromkeys(GRANTS, False)
    value = record["value"] or {}
    return {name: value.get(name) is True for name in GRANTS}


def change_grants(args: argparse.Namespace, key: AdminKey, node_id: bytes,
                  changes: dict[str, bool]) -> dict[str, bool]:
    from ..core.authority import grant_key

    grants = {**current_grants(args, node_id), **changes}
    sign_and_put(args, key, grant_key(node_id), grants)
    return grants


def grant_node_id(text: str) -> bytes:
    from ..identity import parse_node_id

    try:
        return parse_node_id(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a node id (grants name node ids, never names: "
                         "`gossipnode members --json` lists them)") from None


def policy_signed(args: argparse.Namespace) -> dict[str, Any] | None:
    """`policy private-keys` and `policy wep` under administrators: the change as a signed
    record (a grant, or the WEP policy); None in an open cluster (the agent writes it)."""
    from ..core.placement import WEP_POLICY_KEY

    policy = request(args, "policy_show")
    if not policy.get("enforced"):
        return None
    key = load_admin_key(args.admin_key)
    if args.policy_action == "private-keys":
        change_grants(args, key, grant_node_id(args.node),
                      {"private_keys": args.decision == "allow"})
    else:
        if args.eligible is not None:
            raise UsageError("under administrators WEP members are chosen by grant, not by "
                             "name: gossipnode grant NODE_ID wep")
        wep = policy["wep"]
        value = {"replication": wep["replication"], "replicas": wep["replicas"]}
        if args.replication is not None:
            value["replication"] = args.replication == "on"
        if args.replicas is not None:
            if not 1 <= args.replicas <= 16:
                raise UsageError("--replicas must be from 1 to 16")
            value["replicas"] = args.replicas
        sign_and_put(args, key, WEP_POLICY_KEY, value)
    return request(args, "policy_show")
