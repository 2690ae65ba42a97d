"""The `gossipnode` command: the composition root.

Every verb is added by the module that implements it (commands/): the setup verbs
(commands/setup_verbs.py), the agent, and the client verbs that talk to a running agent.
This module registers them, builds the parser and runs the verb named. Errors an operator
can fix print one line on stderr and exit 2; no traceback reaches the terminal.

A run imports only what its verb uses: `VERB_MODULES` (commands/verb_modules.py) names the
module of every verb, and `main` loads that one module (all of them for `--help`, or a word
that is no verb). Modules import at their top only what building their arguments needs; the
rest (the configuration, the identity and its crypto, the core) is imported where a verb
runs, so a client verb is a socket and a JSON line, not the node's code.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .commands.verb_modules import VERB_MODULE_ORDER, VERB_MODULES, verb_of

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran and said no (e.g. `get` of a missing record)
EXIT_USAGE = 2  # bad input: arguments, config, files

# Verbs register themselves here: name -> (help, add_arguments, run).
Arguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]
Verb = tuple[str, str, Arguments, Run]
_VERBS: list[Verb] = []


class UsageError(Exception):
    """An operator error: printed as one line, exit code 2."""


def verb(name: str, help_text: str, arguments: Callable[[argparse.ArgumentParser], None]):
    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        _VERBS.append((name, help_text, arguments, run))
        return run

    return register


# --- output helpers -------------------------------------------------------------------------


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """An aligned table, as serf and consul print theirs; non-printable characters in cells
    are escaped (cells may hold what peers said about themselves)."""
    from .core.text import escape_text

    cells = [list(map(str, header)), *[[escape_text(str(c)) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        cells_padded = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells_padded).rstrip())


# --- entry point ----------------------------------------------------------------------------


def build_parser(options_of: str | None = None) -> argparse.ArgumentParser:
    """The parser of every registered verb. With `options_of`, only that verb's options are
    built ("": none): a run parses the options of the verb it names and no other's (`--help`
    lists each verb by its help line), and some verbs' options import what they offer."""
    parser = argparse.ArgumentParser(
        prog="gossipnode",
        description="A replicated cluster node for PGP key-management servers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  gossipnode init --data-dir /var/lib/gossipnode --name pgp-a --listen 10.0.0.1:7946 \\\n"
        "      --secret-file cluster.secret\n"
        "  gossipnode agent --config /var/lib/gossipnode/node.toml\n"
        "  export GOSSIPNODE_SOCKET=/var/lib/gossipnode/control.sock\n"
        "  gossipnode status\n"
        "  gossipnode put groups sales --value '{\"members\": [\"ann\"]}'\n\n"
        "Client verbs find the agent by --socket PATH, --config FILE or $GOSSIPNODE_SOCKET.\n"
        "Run `gossipnode VERB --help` for a verb's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"gossipnode {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, help_text, arguments, run in _VERBS:
        sub = verbs.add_parser(
            name,
            help=help_text.splitlines()[0],
            description=help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if options_of is None or name == options_of:
            arguments(sub)
        sub.set_defaults(run=run)
    return parser


def _load_verbs(modules: Sequence[str] | None = None) -> None:
    """Import the modules that register more verbs (they import this module): `modules`,
    or all of them (commands/verb_modules.py)."""
    import importlib

    for module in VERB_MODULE_ORDER if modules is None else modules:
        importlib.import_module(module)


def main(argv: Sequence[str] | None = None) -> int:
    verb_named = verb_of(sys.argv[1:] if argv is None else argv)
    if verb_named is None:  # `--help`, or no verb, or a wrong one: argparse lists them all
        _load_verbs()
    else:
        _load_verbs([VERB_MODULES[verb_named]])
    args = build_parser(verb_named or "").parse_args(argv)
    try:
        if args.verb == "agent":
            # An agent's start-up imports a few hundred modules and makes thousands of
            # objects that live as long as it does: the dozens of collections they would
            # set off find little and cost about a tenth of the start-up's CPU, which agents
            # started together pay at once. runtime/daemon.py `run_agent` collects once
            # when the imports are done, and from then on as usual.
            gc.disable()
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        failure = _failure(error)
        if failure is None:
            raise  # a bug: its traceback is what a report needs
        code, message = failure
        if message is not None:
            print(f"gossipnode {args.verb}: {message}", file=sys.stderr)
        return code
    finally:
        gc.enable()  # also when the agent stopped before run_agent, or main ran in-process


def _failure(error: Exception) -> tuple[int, str | None] | None:
    """(exit code, one line for stderr) of an error an operator can act on; None for any
    other error.

    The error classes of the configuration, the identity and the client are looked up among
    the modules already imported, never imported here: an error of a module the verb never
    loaded cannot have been raised, and `main` stays as light as its verb."""
    client = sys.modules.get("gossipnode.client")
    if client is not None and isinstance(error, client.ClientError):
        # The agent said no: its one-line reason, and its exit code (1 "no such record").
        return error.exit_code, str(error)
    usage: list[type[Exception]] = [UsageError]
    for module, name in (("gossipnode.config", "ConfigError"),
                         ("gossipnode.identity", "IdentityError"),
                         ("gossipnode.client", "AgentUnreachable")):
        if module in sys.modules:
            usage.append(getattr(sys.modules[module], name))
    if isinstance(error, tuple(usage)):
        return EXIT_USAGE, str(error)
    if isinstance(error, BrokenPipeError):
        # Output piped into `head` and the like: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK, None
    if isinstance(error, OSError):
        # A file or directory the operator named cannot be used (permissions, a full disk).
        where = f"{error.filename}: " if error.filename else ""
        return EXIT_USAGE, f"{where}{error.strerror or error}"
    return None


if __name__ == "__main__":
    # Run as `python -m gossipnode.cli`: verbs register with the imported module, not this one.
    from gossipnode.cli import main as imported_main

    sys.exit(imported_main())
