"""The simulator drives the very NodeCore the agent runs: every scenario, the random mode,
replays, and a deliberately broken core that the checkers must catch."""

import os
import subprocess
import sys

import pytest

from gossipnode.core.node import NodeCore
from simulations.runner import run_scenario
from simulations.scenarios import SCENARIOS

from .variants import disable_eligibility_check, place_off_by_one

# Small clusters keep the suite fast; `python -m simulations` defaults to 100 members.
NODES = 12


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("scenario", sorted(set(SCENARIOS) - {"random"}))
def test_scenario_passes_with_the_real_core(scenario, seed):
    report = run_scenario(scenario, nodes=NODES, seed=seed, core_factory=NodeCore)
    assert report.passed, report.to_text()
    assert report.converged
    assert report.converge_s <= SCENARIOS[scenario].bound_s
    assert report.violations == []


def test_random_mode_sweep_of_fifty_seeds_passes_with_the_real_core():
    failing = []
    for seed in range(1, 51):
        report = run_scenario("random", nodes=6, seed=seed, core_factory=NodeCore)
        if not report.passed:
            failing.append(report.replay)
    assert not failing, failing


def test_two_runs_of_one_seed_print_identical_bytes():
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-m", "simulations", "run", "churn", "--nodes", "10", "--seed",
             "3", "--json"], capture_output=True, env=env, timeout=300, check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert b'"converged": true' in outputs[0]


def test_a_core_that_skips_the_eligibility_check_is_caught(monkeypatch):
    # The checkers judge against the truth (their own model), not the core's view.
    disable_eligibility_check(monkeypatch)
    report = run_scenario("private-key-revoke", nodes=NODES, seed=1, core_factory=NodeCore)
    assert not report.passed
    assert any(v.kind == "containment" for v in report.violations), report.to_text()


def test_a_core_whose_placement_is_off_by_one_is_caught(monkeypatch):
    place_off_by_one(monkeypatch)
    report = run_scenario("wep-rebalance", nodes=NODES, seed=1, core_factory=NodeCore)
    assert not report.passed
    placement = [v for v in report.violations if v.kind == "placement"]
    assert placement, report.to_text()
    assert "held by non-owners" in placement[0].detail
