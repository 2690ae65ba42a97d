"""Shared fixtures: a small cluster of stand-in cores."""

import pytest

from simulations.cluster import Cluster

from .standin import StandinCore


@pytest.fixture
def make_cluster():
    def make(nodes: int = 8, seed: int = 1, core=StandinCore, **options) -> Cluster:
        return Cluster(core, nodes=nodes, seed=seed, **options)
    return make
