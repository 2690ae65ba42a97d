"""Each checker fires on a stand-in with the matching bug, and stays silent on a good one."""

import pytest

from simulations.runner import run_scenario

from .standin import BrokenStandin, StandinCore
from .variants import (
    EagerMailboxMover,
    ForgetfulWriter,
    Hoarder,
    LocalLeaker,
    NoQuarantine,
    OperatorQuarantine,
    Raiser,
    Silent,
    Spinner,
)

NODES = 15


def _kinds(report) -> set[str]:
    return {violation.kind for violation in report.violations}


@pytest.mark.parametrize(("core", "scenario", "kind"), [
    (BrokenStandin, "private-key-revoke", "containment"),
    (LocalLeaker, "partition-heal", "containment"),
    (Hoarder, "private-key-revoke", "containment"),
    (EagerMailboxMover, "wep-rebalance", "placement"),
    (ForgetfulWriter, "crash-restart", "durability"),
    (NoQuarantine, "long-absence", "resurrection"),
    (Raiser, "partition-heal", "core-error"),
    (Spinner, "partition-heal", "liveness"),
])
def test_checker_catches_the_broken_core(core, scenario, kind):
    report = run_scenario(scenario, nodes=NODES, seed=1, core_factory=core)
    assert kind in _kinds(report), report.to_text()
    assert not report.passed
    first = next(v for v in report.violations if v.kind == kind)
    assert first.step > 0
    assert first.time_s > 0
    assert first.detail


@pytest.mark.parametrize("scenario", ["private-key-revoke", "wep-rebalance", "long-absence"])
def test_checkers_stay_silent_on_the_good_core(scenario):
    report = run_scenario(scenario, nodes=NODES, seed=1, core_factory=StandinCore)
    assert report.passed, report.to_text()


def test_a_core_that_never_replicates_does_not_converge():
    report = run_scenario("partition-heal", nodes=NODES, seed=1, core_factory=Silent)
    assert not report.converged
    assert report.converge_s is None
    assert report.gaps


def test_the_broken_private_key_core_is_caught_at_the_first_delivery():
    """Containment is checked at every delivery, not only at the end: the violation's
    step is long before the run's last step."""
    report = run_scenario("private-key-revoke", nodes=NODES, seed=2, core_factory=BrokenStandin)
    containment = [v for v in report.violations if v.kind == "containment"]
    assert containment
    assert containment[0].step < report.steps // 2
    assert "private key delivered to ineligible" in containment[0].detail


def test_a_quarantined_node_is_reseeded_by_the_operator_and_nothing_comes_back():
    report = run_scenario("long-absence", nodes=NODES, seed=1, core_factory=OperatorQuarantine)
    assert report.passed, report.to_text()
    assert report.events["operator reseeds"] == 1
