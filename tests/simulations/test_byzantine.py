"""A Byzantine member (forged policy, forged grants, unauthorised private keys, replays)
against a governed cluster of real cores: containment, integrity and placement hold on
every seed, and the oracle does catch a core that believes what it is told."""

import pytest

from gossipnode.core.node import NodeCore
from simulations.byzantine import run_byzantine

# Odd seeds: the Byzantine member is admitted (and granted nothing else); even: it is not.
SEEDS = range(1, 21)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_byzantine_member_changes_and_receives_nothing_it_was_not_granted(seed):
    report = run_byzantine(seed)
    assert report.passed, report.to_text()
    assert report.forged_sent > 1000 and report.refused > 1000


def credulous_core(*args, **kwargs):
    """A core that skips the authority checks on what peers send: the oracle must see it."""
    core = NodeCore(*args, **kwargs)
    original = core.admission.refusal

    def refusal(sender, record, *stored):
        enforced, core.authority.admin_keys = core.authority.admin_keys, frozenset()
        try:
            return original(core.node_id, record, *stored)
        finally:
            core.authority.admin_keys = enforced

    core.admission.refusal = refusal
    return core


def test_the_oracle_catches_a_core_that_believes_forged_records():
    report = run_byzantine(1, core_factory=credulous_core)
    assert not report.passed
    assert any("forged" in v or "grants other than" in v for v in report.violations)
