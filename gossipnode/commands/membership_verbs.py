"""Membership at run time, as serf's verbs: join, leave, force-leave.

- `join HOST:PORT` asks the agent to swap state with a member there; exit 1 if none
  answered within the agent's wait (see runtime/admin_api.py).
- `leave` makes the agent leave the cluster gracefully and exit, and waits (bounded) until
  it has: the same as SIGTERM, for operators who have the socket but not the process.
- `force-leave NAME` forgets a dead member now (marked left and reaped), so `health` stops
  paging about a machine that is gone for good. A live or suspect member is refused. Under
  administrators the force-leave is signed here with the administrator key (a
  `force_left/<id>` record bound to the member's incarnation) and replicates: every member
  forgets it and keeps it out until it comes back itself (a restart). In an open cluster it
  acts on this node only, and says so.
"""

from __future__ import annotations

import argparse
import time

from ..cli import EXIT_FAILED, EXIT_OK, verb
from ..client import AgentUnreachable, ClientError, ControlClient
from .admin_key import add_admin_key_argument, load_admin_key, signed_fields
from .connection import add_client_arguments, request, socket_path
from .formatting import print_json

# `leave` waits this long for the agent to finish leaving (about a second of announcing,
# then closing peers and the store), polling this often.
LEAVE_WAIT_S = 30.0
LEAVE_POLL_S = 0.1


def _join_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser, json_help="print the member joined as a JSON object")
    parser.add_argument("address", metavar="HOST:PORT", help="a member of the cluster to join")


@verb(
    "join",
    "join the cluster through a member at HOST:PORT (as `serf join`)\n\n"
    "Exit 1 if no member answered there in time (a wrong address or cluster secret:\n"
    "`gossipnode status` lists refused connections).\n"
    "example: gossipnode join 10.0.0.2:7946 --config /var/lib/gossipnode/node.toml",
    _join_arguments,
)
def _join(args: argparse.Namespace) -> int:
    result = request(args, "join", address=args.address)
    if args.json:
        print_json(result)
    else:
        print(f"joined through {result['joined']} ({result['id']}); "
              f"{result['members']} members known")
    return EXIT_OK


def _leave_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser, json_help="print the result as a JSON object")


@verb(
    "leave",
    "leave the cluster gracefully; the agent then exits (as SIGTERM does)\n\n"
    "Waits until the agent has stopped (at most 30 s); exit 1 if it is still running.\n"
    "example: gossipnode leave --config /var/lib/gossipnode/node.toml",
    _leave_arguments,
)
def _leave(args: argparse.Namespace) -> int:
    path = socket_path(args)
    result = request(args, "leave")
    deadline = time.monotonic() + LEAVE_WAIT_S
    stopped = False
    while time.monotonic() < deadline:
        try:
            with ControlClient(path, timeout_s=LEAVE_POLL_S * 10) as client:
                client.request("ping")
        except AgentUnreachable:
            stopped = True
            break
        time.sleep(LEAVE_POLL_S)
    result["stopped"] = stopped
    if args.json:
        print_json(result)
    else:
        print(f"{result['leaving']} left the cluster and stopped" if stopped else
              f"{result['leaving']} is leaving but still running after {LEAVE_WAIT_S:.0f} s")
    return EXIT_OK if stopped else EXIT_FAILED


def _force_leave_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser, json_help="print the member removed as a JSON object")
    add_admin_key_argument(parser)
    parser.add_argument("node", metavar="NAME", help="a dead member's name or node id")


@verb(
    "force-leave",
    "forget a dead member now: marked left and reaped (as `serf force-leave`)\n\n"
    "For a machine that is gone for good, so `health` stops reporting it dead. A live or\n"
    "suspect member is refused (exit 1). Under administrators it is signed with the\n"
    "administrator key and replicates: every member forgets the member, and gossip cannot\n"
    "bring it back until it rejoins itself (a restart; a member that was in fact running\n"
    "refutes and comes back at once). In an open cluster (no administrator key pinned) it\n"
    "acts on this node only; the others forget the member when they reap it.\n"
    "example: gossipnode force-leave pgp-c --admin-key admin.key --config node.toml",
    _force_leave_arguments,
)
def _force_leave(args: argparse.Namespace) -> int:
    from ..core.authority import force_left_key
    from ..identity import parse_node_id

    if request(args, "trust_show")["enforced"]:
        key = load_admin_key(args.admin_key)
        member = _find_member(args, args.node)
        node_id = parse_node_id(member["id"])
        fields = signed_fields(args, key, force_left_key(node_id),
                               {"incarnation": member["incarnation"]})
        result = request(args, "force_leave", node=member["id"], **fields)
    else:
        result = request(args, "force_leave", node=args.node)
    if args.json:
        print_json(result)
    elif result["replicated"]:
        print(f"removed {result['removed']} ({result['id']}) from the cluster: a force-leave "
              f"signed at incarnation {result['incarnation']} replicates to every member; it "
              "stays out until it rejoins itself")
    else:
        print(f"removed {result['removed']} ({result['id']}) on this node only: the cluster "
              "pins no administrator key, so a force-leave cannot be signed and replicated "
              "(other members forget it when they reap it; run force-leave on each to forget "
              "it now)")
    return EXIT_OK


def _find_member(args: argparse.Namespace, name_or_id: str) -> dict:
    """The member the agent lists under that name, else that node id (as the agent finds
    it); exit 1 when there is none."""
    from ..identity import parse_node_id

    members = request(args, "members")
    for member in members:
        if member["name"] == name_or_id:
            return member
    try:
        node_id = parse_node_id(name_or_id)
    except ValueError:
        node_id = None
    for member in members:
        if node_id is not None and parse_node_id(member["id"]) == node_id:
            return member
    raise ClientError(f"no member named {name_or_id!r}", exit_code=1)
