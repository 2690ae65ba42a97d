"""Each checker fires on a stand-in with the matching bug, and stays silent on a good one."""

import pytest

from simulations.runner import run_scenario

from .standin import BrokenStandin, StandinCore
from .variants import (
    DiskErrorSwallower,
    EagerMailboxMover,
    ForgetfulWriter,
    Hoarder,
    LocalLeaker,
    NoQuarantine,
    OperatorQuarantine,
    Raiser,
    Silent,
    Spinner,
    StoreThenRefuse,
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


def test_a_core_that_acknowledges_a_write_its_failing_disk_refused_is_caught(make_cluster):
    cluster = make_cluster(nodes=3, core=DiskErrorSwallower)
    cluster.run_for(3.0)
    node = cluster.nodes[0]
    cluster.fail_storage(node, 1.0)
    pending = cluster.write(node, "groups", "g", {"n": 1})
    cluster.run_for(0.1)
    assert pending.record is not None  # acknowledged...
    assert node.store.get("groups", "g") is None  # ...and not durable
    kinds = {v.kind: v.detail for v in cluster.checkers.violations}
    assert "acknowledged groups/g before it was in its store" in kinds["durability"]


def test_a_core_that_refuses_a_write_it_stored_is_caught(make_cluster):
    cluster = make_cluster(nodes=3, core=StoreThenRefuse)
    cluster.run_for(3.0)
    pending = cluster.write(cluster.nodes[1], "groups", "g", {"n": 1})
    cluster.run_for(0.1)
    assert pending.error == "refused after the fact"
    kinds = {v.kind: v.detail for v in cluster.checkers.violations}
    assert "refused a write to groups/g and stored it anyway" in kinds["refusal"]


def test_the_good_core_on_a_failing_disk_passes_the_checkers(make_cluster):
    cluster = make_cluster(nodes=3)
    cluster.run_for(3.0)
    cluster.fail_storage(cluster.nodes[0], 1.0)
    refused = cluster.write(cluster.nodes[0], "groups", "g", {"n": 1})
    cluster.run_for(2.0)
    assert refused.error is not None
    retried = cluster.write(cluster.nodes[0], "groups", "g", {"n": 2})  # the disk is back
    cluster.run_for(0.1)
    assert retried.record is not None
    cluster.heal()
    assert cluster.run_until_converged(60.0) is not None
    cluster.checkers.check_converged_state()
    assert cluster.checkers.violations == []
