"""The `gossipnode` command stays light: a client verb is a socket and a JSON line, so it
loads neither Trio, the core, the wire codecs, the store nor the OpenPGP code; each verb is
registered by the module commands/verb_modules.py names for it, and a run that loads only
that module parses and prints exactly as one that loads them all.

What a run loaded is read from `sys.modules` of a fresh interpreter after `cli.main` ran:
an import that costs no time still counts, and timing is left to scripts/bench_cli.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

from gossipnode import cli
from gossipnode.core.membership.members import STATES

from .conftest import REPOSITORY, environment

# Packages and gossipnode modules no client verb may load (by name and by prefix).
HEAVY = ("trio", "pysequoia", "nacl", "cbor2", "sqlite3", "h11", "gossipnode.runtime",
         "gossipnode.wire", "gossipnode.storage", "gossipnode.openpgp", "gossipnode.driving",
         "gossipnode.identity", "gossipnode.config", "gossipnode.config_file")
# The core's package itself is empty; `core.text` escapes table cells and imports nothing.
CORE_ALLOWED = ("gossipnode.core", "gossipnode.core.text")
COLUMNS = "100"  # argparse wraps help at the terminal's width: the same for both runs

PROGRAM = """
import json, sys
from gossipnode.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
loaded = sorted(name for name in sys.modules if name.split(".")[0] in
                ("gossipnode", "trio", "pysequoia", "nacl", "cbor2", "sqlite3", "h11"))
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def run_cli(*arguments: str) -> tuple[int, list[str], str]:
    """(exit code, loaded modules, stdout) of `gossipnode ARGUMENTS` in a fresh interpreter."""
    env = {**environment(), "COLUMNS": COLUMNS}
    result = subprocess.run([sys.executable, "-c", PROGRAM, *arguments], cwd=REPOSITORY,
                            env=env, capture_output=True, text=True, timeout=60)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return report["code"], report["loaded"], result.stdout


def heavy(loaded: list[str]) -> list[str]:
    return [name for name in loaded
            if any(name == h or name.startswith(h + ".") for h in HEAVY)
            or (name.startswith("gossipnode.core") and name not in CORE_ALLOWED)]


CLIENT_RUNS = [
    ("status",),
    ("members",),
    ("put", "groups", "sales", "--value", '{"members": ["ann"]}'),
    ("get", "groups", "sales"),
    ("info", "--json"),
]


@pytest.mark.parametrize("arguments", CLIENT_RUNS, ids=lambda words: words[0])
def test_a_client_verb_without_an_agent_loads_nothing_of_the_node(tmp_path, arguments):
    code, loaded, _ = run_cli(*arguments, "--socket", str(tmp_path / "absent.sock"))
    assert code == 2  # no agent answers: one line, exit 2
    assert heavy(loaded) == []


def test_help_loads_every_verb_and_nothing_of_the_node():
    code, loaded, out = run_cli("--help")
    assert code == 0 and "force-leave" in out
    assert heavy(loaded) == []


@pytest.mark.slow
def test_client_verbs_against_a_real_agent_load_nothing_of_the_node(tmp_path, new_agent):
    agent = new_agent(tmp_path, "light")
    agent.start()
    try:
        for arguments in CLIENT_RUNS:
            code, loaded, out = run_cli(*arguments, "--socket", str(agent.socket))
            assert code == 0, (arguments, out)
            assert heavy(loaded) == [], arguments
        code, _, out = run_cli("members", "--socket", str(agent.socket))
        assert "light (self)" in out and "alive" in out
    finally:
        agent.stop()


def test_every_verb_is_registered_by_the_module_verb_modules_names():
    cli._load_verbs()
    registered = {name: run.__module__ for name, _, _, run in cli._VERBS}
    named = {name: module or "gossipnode.cli" for name, module in cli.VERB_MODULES.items()}
    assert registered == named


def test_a_verb_loaded_alone_prints_the_same_help_as_with_every_verb_loaded():
    """Each verb's `--help`, run with only its own module loaded (a fresh process), is the
    text the parser of all verbs prints for it (this process, every module loaded)."""
    cli._load_verbs()
    everything = cli.build_parser()
    for name in cli.VERB_MODULES:
        expected = _help_in_process(everything, name)
        code, _, alone = run_cli(name, "--help")
        assert code == 0
        assert alone == expected, name


def _help_in_process(parser, verb: str) -> str:
    out = io.StringIO()
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = COLUMNS
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            parser.parse_args([verb, "--help"])
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return out.getvalue()


def test_the_status_codes_cover_the_member_states_the_agent_reports():
    from gossipnode.commands.status_verbs import STATE_CODES

    assert set(STATE_CODES) == set(STATES)



def test_the_agent_loads_no_test_tooling():
    """The agent's own modules import neither pytest nor trio.testing (which imports pytest:
    about 80 ms of CPU and 10 MiB at every start). Checked on the modules `agent` runs, in a
    fresh interpreter, since the test runner has both loaded already."""
    program = ("import sys, gossipnode.runtime.daemon, gossipnode.commands.agent\n"
               "print(sorted(n for n in sys.modules if n.split('.')[0] in "
               "('pytest', '_pytest', 'hypothesis') or n.startswith('trio.testing')))")
    result = subprocess.run([sys.executable, "-c", program], cwd=REPOSITORY,
                            env=environment(), capture_output=True, text=True, timeout=60,
                            check=True)
    assert json.loads(result.stdout.replace("'", '"')) == []
