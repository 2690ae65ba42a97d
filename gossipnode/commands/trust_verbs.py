"""Administrator verbs: `admin keygen`, `admin adopt`, `admin resign`, `admit`, `grant`,
`revoke`.

The administrator's key is read and used by commands/admin_key.py, the grant records it
signs are read and changed by commands/signed_policy.py; these verbs write them.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path

from ..cli import EXIT_OK, UsageError, verb
from ..client import ClientError
from .admin_key import (
    SEED_BYTES,
    AdminKey,
    add_admin_key_argument,
    load_admin_key,
    public_key_text,
    sign_and_put,
)
from .connection import add_client_arguments, request
from .formatting import print_json, print_table
from .signed_policy import change_grants, grant_node_id

# --- admit, grant, revoke -----------------------------------------------------------------------


def _grant_arguments(parser: argparse.ArgumentParser, *, with_grants: bool = True) -> None:
    from ..core.authority import GRANTS

    add_client_arguments(parser, json_help="print the member's grants as JSON")
    add_admin_key_argument(parser)
    parser.add_argument("node", metavar="NODE_ID", help="the member's node id")
    if with_grants:
        parser.add_argument("grants", nargs="+", metavar="GRANT",
                            choices=[g.replace("_", "-") for g in GRANTS],
                            help="admitted, private-keys or wep")


def _print_grants(args: argparse.Namespace, grants: dict[str, bool]) -> None:
    from ..core.authority import GRANTS

    if args.json:
        print_json(grants)
    else:
        print_table(["Grant", "Value"],
                    [[name, "yes" if grants[name] else "no"] for name in GRANTS])


@verb(
    "admit",
    "admit a node id to data replication (a record signed with the administrator key)\n\n"
    "A new node takes part in replication only once admitted; `init` prints its id.\n"
    "example: gossipnode admit ABCD...-...-...-... --admin-key admin.key --config node.toml",
    lambda parser: _grant_arguments(parser, with_grants=False),
)
def _admit(args: argparse.Namespace) -> int:
    return _set_grants(args, {"admitted": True})


def _set_grants(args: argparse.Namespace, changes: dict[str, bool]) -> int:
    """Sign the node's grant record with `changes` applied, send it, print the result."""
    node_id = grant_node_id(args.node)
    key = load_admin_key(args.admin_key)
    _print_grants(args, change_grants(args, key, node_id, changes))
    return EXIT_OK


@verb(
    "grant",
    "grant a node id admitted, private-keys and/or wep (signed with the administrator key)\n\n"
    "A member holds private keys only with the private-keys grant AND its own private_keys\n"
    "tag; WEP mailboxes only with the wep grant AND its wep tag. No grant, nothing.\n"
    "example: gossipnode grant NODE_ID private-keys wep --admin-key admin.key --config node.toml",
    _grant_arguments,
)
def _grant(args: argparse.Namespace) -> int:
    return _set_grants(args, {name.replace("-", "_"): True for name in args.grants})


@verb(
    "revoke",
    "take grants away from a node id (signed with the administrator key)\n\n"
    "A member that loses private-keys hands its private keys to an eligible member and\n"
    "removes them; one that loses admitted receives and sends no more data.\n"
    "example: gossipnode revoke NODE_ID private-keys --admin-key admin.key --config node.toml",
    _grant_arguments,
)
def _revoke(args: argparse.Namespace) -> int:
    return _set_grants(args, {name.replace("-", "_"): False for name in args.grants})


# --- admin keygen, admin adopt ------------------------------------------------------------------


def _admin_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="admin_action", metavar="ACTION", required=True)
    keygen = actions.add_parser(
        "keygen", help="make an administrator key pair (keep the secret half off the nodes)",
        description="write a new Ed25519 administrator key: the secret half to FILE (mode\n"
        "0600; keep it with the operator, never on a node) and the public half to FILE.pub,\n"
        "which `gossipnode init --admin-pubkey FILE.pub` pins in node.toml.\n\n"
        "example: gossipnode admin keygen --out ~/gossipnode-admin.key",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keygen.add_argument("--out", type=Path, required=True, metavar="FILE")
    adopt = actions.add_parser(
        "adopt", help="sign today's policy and admit today's members (existing clusters)",
        description="for a cluster that ran without an administrator key: admit every\n"
        "member this node knows, grant private-keys to those the current policy lets hold\n"
        "them and wep to those that run WEP and may own mailboxes, sign the WEP policy, and\n"
        "(on a member granted private keys) re-sign the private keys written before.\n"
        "Pin the administrator public key on every node (admin_keys in node.toml) before or\n"
        "after; the signed records count once it is pinned.\n\n"
        "example: gossipnode admin adopt --admin-key admin.key --config node.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_client_arguments(adopt, json_help="print the grants written as JSON")
    add_admin_key_argument(adopt)
    resign = actions.add_parser(
        "resign", help="sign every grant and the WEP policy anew (key rotation)",
        description="rotation of the administrator key: pin the new public key on every\n"
        "node (admin_keys, next to the old one), run this with the NEW key, then remove\n"
        "the old key from admin_keys.\n\n"
        "example: gossipnode admin resign --admin-key new-admin.key --config node.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_client_arguments(resign, json_help="print how many records were signed as JSON")
    add_admin_key_argument(resign)


@verb(
    "admin",
    "administrator key and migration: admin keygen --out FILE | adopt | resign --admin-key FILE"
    "\n\n"
    "example: gossipnode admin keygen --out admin.key\n"
    "example: gossipnode admin adopt --admin-key admin.key --config node.toml",
    _admin_arguments,
)
def _admin(args: argparse.Namespace) -> int:
    if args.admin_action == "keygen":
        return _keygen(args.out)
    if args.admin_action == "resign":
        return _resign(args)
    return _adopt(args)


def _keygen(out: Path) -> int:
    from ..identity import write_private_file

    public_file = out.with_name(out.name + ".pub")
    if public_file.exists():
        raise UsageError(f"{public_file}: already exists; refusing to overwrite it")
    seed = os.urandom(SEED_BYTES)
    write_private_file(out, base64.b64encode(seed) + b"\n")
    public = public_key_text(AdminKey(seed).public_key)
    public_file.write_text(public + "\n")
    print(public)
    print(f"wrote the administrator key to {out} (keep it off the nodes) and its public key "
          f"to {public_file} (pin it: gossipnode init --admin-pubkey {public_file})",
          file=sys.stderr)
    return EXIT_OK


def _adopt(args: argparse.Namespace) -> int:
    from ..core.authority import grant_key
    from ..core.placement import POLICY_DATASET, WEP_POLICY_KEY
    from ..identity import parse_node_id

    key = load_admin_key(args.admin_key)
    policy = request(args, "policy_show")
    legacy = {r["key"]: r["value"] for r in request(args, "list", dataset=POLICY_DATASET)}
    denied = {k.removeprefix("private_keys/") for k, v in legacy.items()
              if k.startswith("private_keys/") and v.get("allow") is False}
    wep = legacy.get(WEP_POLICY_KEY) or {}
    eligible = set(wep.get("eligible") or ())
    written = []
    for member in request(args, "members"):
        if member["state"] not in ("alive", "suspect"):
            continue
        node_id = parse_node_id(member["id"])
        grants = {
            "admitted": True,
            "private_keys": member["tags"]["private_keys"] and node_id.hex() not in denied,
            "wep": member["tags"]["wep"] and (not eligible or member["name"] in eligible),
        }
        sign_and_put(args, key, grant_key(node_id), grants)
        written.append({"name": member["name"], "id": member["id"], **grants})
    wep_value = {"replication": policy["wep"]["replication"], "replicas": policy["wep"]["replicas"]}
    sign_and_put(args, key, WEP_POLICY_KEY, wep_value)
    resigned = _resign_private_keys(args)
    if args.json:
        print_json(written)
    else:
        print(resigned)
        print_table(["Name", "Admitted", "Private keys", "WEP"],
                    [[w["name"], "yes", "yes" if w["private_keys"] else "no",
                      "yes" if w["wep"] else "no"] for w in written])
        print("signed the WEP policy: replication "
              f"{'on' if wep_value['replication'] else 'off'}, {wep_value['replicas']} replicas")
    return EXIT_OK


def _resign_private_keys(args: argparse.Namespace) -> str:
    """Have this node re-sign the private keys written before the cluster had
    administrators (they carry no signature, so other members would refuse them)."""
    try:
        result = request(args, "resign_private_keys")
    except ClientError as error:
        return f"private keys not re-signed: {error}"
    return f"re-signed {result['resigned']} private keys written before grants existed"


def _resign(args: argparse.Namespace) -> int:
    """Rotation: every grant and the WEP policy this node accepts, signed anew with
    --admin-key (the new key, already pinned on every node)."""
    from ..core.authority import GRANTS, grant_key
    from ..core.placement import WEP_POLICY_KEY
    from ..identity import parse_node_id

    key = load_admin_key(args.admin_key)
    trust = request(args, "trust_show")
    if not trust["enforced"]:
        raise UsageError("this node pins no administrator key: nothing to re-sign")
    if public_key_text(key.public_key) not in trust["admin_keys"]:
        raise UsageError("this administrator key is not pinned on this node; add it to "
                         "admin_keys everywhere first")
    for grant in trust["grants"]:
        node_id = parse_node_id(grant["id"])
        sign_and_put(args, key, grant_key(node_id), {name: grant[name] for name in GRANTS})
    wep = request(args, "policy_show")["wep"]
    sign_and_put(args, key, WEP_POLICY_KEY,
                 {"replication": wep["replication"], "replicas": wep["replicas"]})
    count = len(trust["grants"]) + 1
    if args.json:
        print_json({"resigned": count})
    else:
        print(f"re-signed {len(trust['grants'])} grants and the WEP policy; once every node "
              "has them, the old key can be removed from admin_keys")
    return EXIT_OK
