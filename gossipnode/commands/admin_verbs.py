"""Administrative client verbs: policy, tags, repair, reseed, owners.

The cluster policy is a replicated record (dataset cluster_policy): `policy` writes it on
this node and it reaches every member like any write. Under administrators (admin_keys in
node.toml) the change is signed here with --admin-key (see admin_key.py). `tags set`
changes only this node's tags, gossiped by membership. `repair` and `reseed` act on this
node now; `reseed` discards replicated data and so asks for `--yes`.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..cli import EXIT_FAILED, EXIT_OK, UsageError, verb
from .admin_key import add_admin_key_argument
from .connection import add_client_arguments, request
from .formatting import print_json, print_pairs, print_table
from .signed_policy import policy_signed

# --- policy -------------------------------------------------------------------------------------


def _policy_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="policy_action", metavar="ACTION", required=True)
    formatter = argparse.RawDescriptionHelpFormatter
    private_keys = actions.add_parser(
        "private-keys",
        help="allow or deny a member to hold private keys",
        description="allow or deny a member (by name or node id) to hold internal users'\n"
        "private keys; a denied member purges the ones it holds. The member's own\n"
        "private_keys tag must say yes too.\n\n"
        "example: gossipnode policy private-keys pgp-c deny --config node.toml",
        formatter_class=formatter,
    )
    add_client_arguments(private_keys, json_help="print the resulting policy as JSON")
    add_admin_key_argument(private_keys)
    private_keys.add_argument("node", metavar="NODE", help="a member's name or node id")
    private_keys.add_argument("decision", choices=("allow", "deny"))
    wep = actions.add_parser(
        "wep",
        help="set WEP mailbox replication: on/off, replicas, eligible members",
        description="set how WEP mailboxes are placed: each mailbox lives on R members chosen\n"
        "among the members that run WEP (or only the --eligible ones) by rendezvous hashing.\n"
        "Options not given keep their current value.\n\n"
        "example: gossipnode policy wep --replication on --replicas 2 --eligible pgp-a,pgp-b",
        formatter_class=formatter,
    )
    add_client_arguments(wep, json_help="print the resulting policy as JSON")
    add_admin_key_argument(wep)
    wep.add_argument("--replication", choices=("on", "off"), help="replicate mailboxes at all")
    wep.add_argument("--replicas", type=int, metavar="R", help="owners per mailbox (1 to 16)")
    wep.add_argument("--eligible", metavar="NAME,...",
                     help="only these WEP members may own mailboxes; empty: every WEP member")
    show = actions.add_parser(
        "show",
        help="print the cluster policy",
        description="print the cluster policy as this node knows it\n\n"
        "example: gossipnode policy show --json",
        formatter_class=formatter,
    )
    add_client_arguments(show, json_help="print the policy as JSON")


def _print_policy(policy: dict[str, Any]) -> None:
    wep = policy["wep"]
    if policy.get("enforced"):
        print_pairs([
            ("Governed by", "administrator keys: grants decide (see `gossipnode members`)"),
            ("Private keys", "members granted private-keys that opt in"),
            ("WEP replication", "on" if wep["replication"] else "off"),
            ("WEP replicas", wep["replicas"]),
            ("WEP owners", "chosen among the members granted wep that run WEP"),
        ])
        return
    print_pairs([
        ("Private keys denied to", ", ".join(policy["private_keys_denied"]) or "(nobody)"),
        ("WEP replication", "on" if wep["replication"] else "off"),
        ("WEP replicas", wep["replicas"]),
        ("WEP eligible", ", ".join(wep["eligible"]) if wep["eligible"] else
         "(every member that runs WEP)"),
    ])


@verb(
    "policy",
    "show or change the cluster policy: policy show | private-keys NODE allow|deny | wep ...\n\n"
    "example: gossipnode policy private-keys pgp-c deny --config node.toml\n"
    "example: gossipnode policy wep --replication on --replicas 3 --config node.toml\n"
    "example: gossipnode policy show --config node.toml",
    _policy_arguments,
)
def _policy(args: argparse.Namespace) -> int:
    signed = None if args.policy_action == "show" else policy_signed(args)
    if signed is not None:
        policy = signed
    elif args.policy_action == "private-keys":
        policy = request(args, "policy_private_keys", node=args.node,
                         allow=args.decision == "allow")
    elif args.policy_action == "wep":
        change: dict[str, Any] = {}
        if args.replication is not None:
            change["replication"] = args.replication == "on"
        if args.replicas is not None:
            change["replicas"] = args.replicas
        if args.eligible is not None:
            change["eligible"] = [n.strip() for n in args.eligible.split(",") if n.strip()]
        if not change:
            raise UsageError("give at least one of --replication, --replicas, --eligible")
        policy = request(args, "policy_wep", **change)
    else:
        policy = request(args, "policy_show")
    if args.json:
        print_json(policy)
    else:
        _print_policy(policy)
    return EXIT_OK


# --- tags ---------------------------------------------------------------------------------------


def _tags_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="tags_action", metavar="ACTION", required=True)
    setter = actions.add_parser(
        "set",
        help="set tags of this node",
        description="set tags of this node at run time; other tags keep their values.\n"
        "wep and private_keys take true or false. Not written to node.toml: a restart\n"
        "goes back to the configured tags.\n\n"
        "example: gossipnode tags set wep=true rack=r2 --config node.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_client_arguments(setter, json_help="print this node's tags as JSON")
    setter.add_argument("pairs", nargs="+", metavar="KEY=VALUE")


@verb(
    "tags",
    "change this node's tags at run time: tags set KEY=VALUE ...\n\n"
    "example: gossipnode tags set private_keys=false --config node.toml",
    _tags_arguments,
)
def _tags(args: argparse.Namespace) -> int:
    tags: dict[str, str] = {}
    for pair in args.pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise UsageError(f"{pair!r}: write KEY=VALUE")
        tags[key] = value
    result = request(args, "tags_set", tags=tags)
    if args.json:
        print_json(result)
    else:
        print_table(["Tag", "Value"], [[k, result[k]] for k in sorted(result)])
    return EXIT_OK


# --- repair -------------------------------------------------------------------------------------


def _repair_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser, json_help="print what moved as a JSON object")
    parser.add_argument("--peer", metavar="NAME", help="the peer to repair with (default: random)")
    parser.add_argument("--dataset", metavar="D", help="only this dataset (default: all)")


@verb(
    "repair",
    "run an anti-entropy round now and report what moved (as `nodetool repair`)\n\n"
    "Waits for the round's sessions (at most 30 s). Exit 1 when no live peer, or when a\n"
    "session failed or the round has not finished within 30 s.\n"
    "example: gossipnode repair --peer pgp-b --dataset consumers --config node.toml",
    _repair_arguments,
)
def _repair(args: argparse.Namespace) -> int:
    arguments = {k: v for k, v in (("peer", args.peer), ("dataset", args.dataset)) if v}
    result = request(args, "repair", **arguments)
    code = EXIT_OK if result["finished"] else EXIT_FAILED  # unfinished is not a success
    if args.json:
        print_json(result)
        return code
    peer = f"{result.get('peer_name', '?')} ({result['peer']})"
    print(f"repaired with {peer}: {result['sessions']} sessions, "
          f"{result['records_received']} records received, {result['records_sent']} sent"
          + ("" if result["finished"] else
             "; NOT FINISHED: " + ("; ".join(result.get("failures") or ())
                                   or "still running after 30 s")))
    return code


# --- reseed -------------------------------------------------------------------------------------


def _reseed_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser, json_help="print the result as a JSON object")
    parser.add_argument("--yes", action="store_true",
                        help="confirm: discard this node's replicated data")
    parser.add_argument("--force", action="store_true",
                        help="reseed even though no live peer holds the data (it may be lost)")


@verb(
    "reseed",
    "discard this node's replicated data and pull it afresh from peers (leaves quarantine)\n\n"
    "A node away longer than the tombstone grace period is quarantined, because its old\n"
    "data could bring deleted records back. Node-local data and the identity are kept.\n"
    "Refused (exit 1) while no live peer holds the data, unless --force.\n"
    "example: gossipnode reseed --yes --config /var/lib/gossipnode/node.toml",
    _reseed_arguments,
)
def _reseed(args: argparse.Namespace) -> int:
    if not args.yes:
        raise UsageError("this discards every replicated record on this node; "
                         "run again with --yes to confirm")
    result = request(args, "reseed", **({"force": True} if args.force else {}))
    if args.json:
        print_json(result)
    else:
        print(f"removed {result['removed_records']} replicated records; replica generation "
              f"is now {result['generation']}; pulling data afresh from peers")
    return EXIT_OK


# --- owners -------------------------------------------------------------------------------------


def _owners_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser, json_help="print the owners as a JSON object")
    parser.add_argument("mailbox", metavar="MAILBOX", help="a WEP mailbox id")


@verb(
    "owners",
    "the members that hold a WEP mailbox (rendezvous placement over the live WEP members)\n\n"
    "example: gossipnode owners mbox-42 --config node.toml",
    _owners_arguments,
)
def _owners(args: argparse.Namespace) -> int:
    result = request(args, "owners", mailbox=args.mailbox)
    if args.json:
        print_json(result)
    elif not result["replication"]:
        print("WEP replication is off: a mailbox stays on the member that wrote it")
    else:
        print_table(["Name", "ID"], [[o["name"], o["short_id"]] for o in result["owners"]])
        if not result["owners"]:
            print("(no live member may own it)")
    return EXIT_OK
