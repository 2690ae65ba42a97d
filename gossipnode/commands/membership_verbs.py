"""Membership at run time, as serf's verbs: join, leave, force-leave.

- `join HOST:PORT` asks the agent to swap state with a member there; exit 1 if none
  answered within the agent's wait (see runtime/admin_api.py).
- `leave` makes the agent leave the cluster gracefully and exit, and waits (bounded) until
  it has: the same as SIGTERM, for operators who have the socket but not the process.
- `force-leave NAME` forgets a dead member now (marked left and reaped), so `health` stops
  paging about a machine that is gone for good. A live or suspect member is refused.
"""

from __future__ import annotations

import argparse
import time

from ..cli import EXIT_FAILED, EXIT_OK, verb
from ..client import AgentUnreachable, ControlClient
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
    parser.add_argument("node", metavar="NAME", help="a dead member's name or node id")


@verb(
    "force-leave",
    "forget a dead member now: marked left and reaped (as `serf force-leave`)\n\n"
    "For a machine that is gone for good, so `health` stops reporting it dead. A live or\n"
    "suspect member is refused (exit 1). Other members forget it when they reap it too.\n"
    "example: gossipnode force-leave pgp-c --config /var/lib/gossipnode/node.toml",
    _force_leave_arguments,
)
def _force_leave(args: argparse.Namespace) -> int:
    result = request(args, "force_leave", node=args.node)
    if args.json:
        print_json(result)
    else:
        print(f"removed {result['removed']} ({result['id']})")
    return EXIT_OK
