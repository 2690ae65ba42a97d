"""The command line: seed first, report fields, byte-identical replays, sweeps."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulations.runner import main
from simulations.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
STANDIN = "tests.simulations.standin:StandinCore"
BROKEN = "tests.simulations.standin:BrokenStandin"


def test_run_prints_the_seed_first_then_the_report(capsys):
    status = main(["run", "crash-restart", "--nodes", "6", "--seed", "5", "--core", STANDIN])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "seed 5"
    assert lines[1] == "scenario crash-restart, 6 nodes"
    assert lines[2].startswith("converged in ")
    assert lines[-1] == "PASS"
    assert status == 0


def test_run_json_has_the_promised_fields(capsys):
    main(["run", "partition-heal", "--nodes", "6", "--seed", "3", "--core", STANDIN, "--json"])
    document = json.loads(capsys.readouterr().out)
    assert {"scenario", "seed", "nodes", "converged", "converge_s", "messages", "bytes",
            "violations"} <= set(document)
    assert document["scenario"] == "partition-heal"
    assert document["seed"] == 3
    assert document["nodes"] == 6
    assert document["converged"] is True
    assert document["violations"] == []
    assert document["messages"] > 0
    # Messages sent by class: every message counted once, under its class.
    assert sum(document["sent"].values()) == document["messages"]
    assert all(count > 0 for count in document["sent"].values())


def test_a_failing_run_names_the_command_that_replays_it(capsys):
    status = main(["run", "private-key-revoke", "--nodes", "10", "--seed", "1",
                   "--core", BROKEN])
    out = capsys.readouterr().out
    assert status == 1
    assert out.splitlines()[-1] == ("FAIL, replay: python -m simulations run "
                                    f"private-key-revoke --nodes 10 --seed 1 --core {BROKEN}")
    assert "containment: private key delivered to ineligible" in out


def test_sweep_lists_the_failing_seeds_with_their_replay_commands(capsys):
    status = main(["sweep", "private-key-revoke", "--nodes", "10", "--seeds", "1-3",
                   "--core", BROKEN])
    out = capsys.readouterr().out
    assert status == 1
    assert "3 of 3 seeds failed" in out
    for seed in (1, 2, 3):
        assert (f"  seed {seed}: python -m simulations run private-key-revoke --nodes 10 "
                f"--seed {seed} --core {BROKEN}") in out


def test_sweep_of_a_good_core_passes(capsys):
    assert main(["sweep", "churn", "--nodes", "6", "--seeds", "1-2", "--core", STANDIN]) == 0
    assert "0 of 2 seeds failed" in capsys.readouterr().out


def test_unknown_core_is_a_clear_error(capsys):
    assert main(["run", "churn", "--seed", "1", "--core", "no.such.module:Core"]) == 2
    assert "cannot load the core" in capsys.readouterr().err


@pytest.mark.parametrize("arguments", [["--seeds", "5-2"], ["--seeds", "x"]])
def test_bad_seed_ranges_are_refused(arguments):
    with pytest.raises(SystemExit):
        main(["sweep", "churn", "--core", STANDIN, *arguments])


def _run_process(hash_seed: str | None, *extra: str) -> bytes:
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    environment.pop("PYTHONHASHSEED", None)
    if hash_seed is not None:
        environment["PYTHONHASHSEED"] = hash_seed
    return subprocess.run(
        [sys.executable, "-m", "simulations", "run", "random", "--nodes", "8", "--seed", "11",
         "--core", STANDIN, *extra],
        cwd=ROOT, env=environment, capture_output=True, check=False, timeout=120,
    ).stdout


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_two_runs_of_one_seed_print_identical_bytes(extra):
    """Separate processes with different hash salts: nothing may depend on hashing."""
    first = _run_process("1", *extra)
    second = _run_process("2", *extra)
    assert first
    assert first == second


def test_an_unset_hash_seed_is_pinned_so_any_core_replays():
    assert _run_process(None, "--json") == _run_process("0", "--json")


def test_table_runs_every_scenario_once_and_times_only_on_request(capsys):
    assert main(["table", "--nodes", "5", "--seed", "2", "--core", STANDIN, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [row["scenario"] for row in document["scenarios"]] == list(SCENARIOS)
    assert all(row["passed"] and "wall_s" not in row for row in document["scenarios"])
    main(["table", "--nodes", "5", "--seed", "2", "--core", STANDIN, "--timing"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == ["wall_s", "cpu_s"]
    assert len(lines) == 1 + len(SCENARIOS)
