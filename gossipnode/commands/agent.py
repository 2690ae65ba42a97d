"""`gossipnode agent`: run a node in the foreground."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import EXIT_FAILED, EXIT_OK, UsageError, verb


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the node.toml to run")


@verb(
    "agent",
    "run a node in the foreground (logs on stderr; SIGTERM or Ctrl-C leaves the cluster,\n"
    "SIGHUP reloads the cluster secrets, log level and tags from the file)\n\n"
    "example: gossipnode agent --config /var/lib/gossipnode/node.toml",
    _arguments,
)
def _agent(args: argparse.Namespace) -> int:
    # Imported here: every `gossipnode` run loads this module, and only `agent` needs Trio.
    from ..config_file import load_config
    from ..runtime.daemon import AgentFailed, StartupError, run_agent
    from ..runtime.logs import setup_logging

    config = load_config(args.config)  # for the log format; run_agent checks everything
    tail = setup_logging(config.log_format, config.log_level)
    try:
        run_agent(args.config, tail)
    except StartupError as error:
        raise UsageError(str(error)) from None
    except AgentFailed as error:  # the disk or the store failed while serving: one line
        print(f"gossipnode agent: stopped: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
