"""Every scenario passes with the stand-in on fixed seeds, and the random mode on 50 seeds."""

import pytest

from simulations.runner import run_scenario
from simulations.scenarios import SCENARIOS

from .standin import StandinCore

# Small clusters keep the whole directory fast; the CLI defaults to 100 members.
NODES = 12


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_passes_on_fixed_seeds(scenario, seed):
    report = run_scenario(scenario, nodes=NODES, seed=seed, core_factory=StandinCore)
    assert report.passed, report.to_text()
    assert report.converge_s is not None
    assert report.converge_s <= SCENARIOS[scenario].bound_s
    assert report.messages > 0
    assert report.bytes > report.messages


def test_random_mode_sweep_of_fifty_seeds_passes():
    failing = []
    for seed in range(100, 150):
        report = run_scenario("random", nodes=6, seed=seed, core_factory=StandinCore)
        if not report.passed:
            failing.append(report.replay)
    assert not failing, failing


def test_the_random_mode_draws_different_faults_per_seed():
    first = run_scenario("random", nodes=8, seed=1, core_factory=StandinCore)
    second = run_scenario("random", nodes=8, seed=2, core_factory=StandinCore)
    assert first.network != second.network
