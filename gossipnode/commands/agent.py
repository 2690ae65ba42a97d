"""`gossipnode agent`: run a node in the foreground."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import EXIT_OK, UsageError, verb
from ..config import load_config


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the node.toml to run")


@verb(
    "agent",
    "run a node in the foreground (logs on stderr; SIGTERM or Ctrl-C leaves the cluster)\n\n"
    "example: gossipnode agent --config /var/lib/gossipnode/node.toml",
    _arguments,
)
def _agent(args: argparse.Namespace) -> int:
    # Imported here: every `gossipnode` run loads this module, and only `agent` needs Trio.
    from ..runtime.agent import run_agent
    from ..runtime.logs import setup_logging
    from ..storage import StoreError

    config = load_config(args.config)
    tail = setup_logging(config.log_format)
    try:
        run_agent(config, tail)
    except StoreError as error:
        raise UsageError(str(error)) from None
    return EXIT_OK
