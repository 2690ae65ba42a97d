"""Administrator verbs: `admin keygen`, `admin adopt`, `admin resign`, `admit`, `grant`,
`revoke`.

The administrator key is an Ed25519 pair that stays with the operator: the secret half is
read here, in the CLI process, from `--admin-key FILE` or $GOSSIPNODE_ADMIN_KEY, and signs
the administrative record before it is sent; it never reaches the agent, which only checks
the signature against the public keys pinned in node.toml (`admin_keys`). A verb that changes
an administrative record refuses to run without the key.

Grants name node ids, never names (a name is whatever a member says it is): `gossipnode init`
prints the node id to admit, `gossipnode members --json` lists them.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

from ..cli import EXIT_OK, UsageError, verb
from ..client import ClientError
from .connection import add_client_arguments, request
from .formatting import print_json, print_table

__all__ = ["ADMIN_KEY_ENV", "AdminKey", "load_admin_key", "sign_and_put", "signed_fields"]

# The signing code, the core's record rules and the CBOR codec are imported by the functions
# that use them: `policy`, `tags`, `join` and the rest load this module for its options.

ADMIN_KEY_ENV = "GOSSIPNODE_ADMIN_KEY"
SEED_BYTES = 32


class AdminKey:
    def __init__(self, seed: bytes) -> None:
        import nacl.signing

        self.signing_key = nacl.signing.SigningKey(seed)

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature


def public_key_text(public_key: bytes) -> str:
    return base64.b64encode(public_key).decode()


def load_admin_key(path: Path | None) -> AdminKey:
    """The administrator key from `path`, else $GOSSIPNODE_ADMIN_KEY. Raises UsageError when
    neither is given, the file is unreadable or malformed, or others may read it."""
    if path is None:
        from_environment = os.environ.get(ADMIN_KEY_ENV)
        if not from_environment:
            raise UsageError(f"this changes an administrative record and needs the "
                             f"administrator key: give --admin-key FILE or set {ADMIN_KEY_ENV}")
        path = Path(from_environment)
    try:
        mode = path.stat().st_mode
        text = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: cannot read the administrator key: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{path}: the administrator key is readable by others; "
                         f"chmod 600 {path}")
    try:
        seed = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        seed = b""
    if len(seed) != SEED_BYTES:
        raise UsageError(f"{path}: not an administrator key (gossipnode admin keygen)")
    return AdminKey(seed)


def signed_fields(args: argparse.Namespace, key: AdminKey, record_key: str,
                  value: dict[str, Any]) -> dict[str, Any]:
    """`value` signed as the administrative record `record_key`: the request fields that
    `put_signed` (and a signed `force_leave`) take.

    The version is the administrator's clock, above the stored record's if that is ahead,
    with the administrator key as origin: the signature covers it, so the record cannot be
    stamped anew by anyone else."""
    from ..core.authority import signing_payload
    from ..core.placement import POLICY_DATASET
    from ..core.records import Version
    from ..wire.cbor import encode_value

    wall_ms = int(time.time() * 1000)
    try:
        current = request(args, "get", dataset=POLICY_DATASET, key=record_key)
        wall_ms = max(wall_ms, current["version"]["wall_ms"] + 1)
    except ClientError as error:
        if error.exit_code != 1:  # 1: no such record yet
            raise
    encoded = encode_value(value)
    version = Version(wall_ms, 0, key.public_key)
    signature = key.sign(signing_payload(POLICY_DATASET, record_key, version, encoded))
    return {
        "dataset": POLICY_DATASET, "key": record_key,
        "value": base64.b64encode(encoded).decode(), "wall_ms": wall_ms, "counter": 0,
        "signer": base64.b64encode(key.public_key).decode(),
        "signature": base64.b64encode(signature).decode(),
    }


def sign_and_put(args: argparse.Namespace, key: AdminKey, record_key: str,
                 value: dict[str, Any]) -> dict[str, Any]:
    """Sign `value` as the administrative record `record_key` and store it through the
    agent (see `signed_fields`)."""
    return request(args, "put_signed", **signed_fields(args, key, record_key, value))


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


def _node_id(text: str) -> bytes:
    from ..identity import parse_node_id

    try:
        return parse_node_id(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a node id (grants name node ids, never names: "
                         "`gossipnode members --json` lists them)") from None


def add_admin_key_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin-key", type=Path, metavar="FILE",
                        help=f"the administrator's secret key (default: ${ADMIN_KEY_ENV})")


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
    node_id = _node_id(args.node)
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


def policy_signed(args: argparse.Namespace) -> dict[str, Any] | None:
    """`policy private-keys` and `policy wep` under administrators: the change as a signed
    record (a grant, or the WEP policy); None in an open cluster (the agent writes it)."""
    from ..core.placement import WEP_POLICY_KEY

    policy = request(args, "policy_show")
    if not policy.get("enforced"):
        return None
    key = load_admin_key(args.admin_key)
    if args.policy_action == "private-keys":
        change_grants(args, key, _node_id(args.node), {"private_keys": args.decision == "allow"})
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
