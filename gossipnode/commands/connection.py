"""How a client verb finds and calls the agent: the options every client verb shares.

Rules:
1. The socket is `--socket PATH`, else the `control_socket` of `--config FILE`, else the
   environment variable GOSSIPNODE_SOCKET; with none of them the verb stops with a usage
   error naming all three (exit 2).
2. Errors are not handled here: `ClientError` (the agent said no) and `AgentUnreachable`
   reach `cli.main`, which prints one line and exits with the agent's code, or 2.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..cli import UsageError
from ..client import SOCKET_ENV, ControlClient

__all__ = ["add_client_arguments", "connect", "request", "socket_path"]


def add_client_arguments(parser: argparse.ArgumentParser, *, json_help: str) -> None:
    """--config / --socket (one of them, or $GOSSIPNODE_SOCKET) and --json."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path, metavar="FILE",
                       help="the agent's node.toml (its control_socket is used)")
    where.add_argument("--socket", type=Path, metavar="PATH",
                       help=f"the agent's control socket (default: ${SOCKET_ENV})")
    parser.add_argument("--json", action="store_true", help=json_help)


def socket_path(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return args.socket
    if args.config is not None:
        from ..config_file import load_config  # the node.toml reader, for this option only

        return load_config(args.config).control_socket_path
    from_environment = os.environ.get(SOCKET_ENV)
    if from_environment:
        return Path(from_environment)
    raise UsageError(f"no agent socket: give --socket PATH or --config FILE, or set {SOCKET_ENV}")


def connect(args: argparse.Namespace) -> ControlClient:
    return ControlClient(socket_path(args))


def request(args: argparse.Namespace, verb: str, **arguments: Any) -> Any:
    """One request on a fresh connection; returns the result or raises ClientError."""
    with connect(args) as client:
        return client.request(verb, **arguments)
