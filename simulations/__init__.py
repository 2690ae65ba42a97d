"""The deterministic simulator (docs/architecture.md): many NodeCores on one virtual clock
and one virtual network, all chance drawn from one seed.

Modules, one idea each:
- clock: virtual time and the event queue;
- network: ordered links with bounded queues, latency, bandwidth, resets, stalls,
  slowdowns, partitions;
- payload: every message through the wire codec, and the records inside it;
- tracked_store: the per-node MemoryStore that keeps digests for the checkers;
- node: one simulated node (identity, config, store, skew, lifecycle state);
- cluster: the event loop of the scenario DSL;
- delivery: what a core's events become on the network, and what arrives (the codec);
- lifecycle_verbs: creating and starting nodes, partitions, crashes, restarts, clocks,
  leaves and joins;
- commands: the client verbs of the DSL (write, delete, set_policy, set_tags), with the
  agent's group commit;
- fault_verbs: link and disk faults of the DSL (stall, slow, cut, failing or slow disks);
- workload: client writes and deletes in every dataset;
- faults: fault moves and the random mode's fault drawer;
- oracle: who may hold what, the checkers' own model of the written rules;
- checkers: the invariants of docs/architecture.md, from ground truth;
- convergence: the liveness phase's convergence and placement checks;
- scenarios: the named fault phases;
- report, runner: what a run prints, and the command line.

This package never imports trio or the runtime; it drives the core through its public API
and the adapter the agent uses (gossipnode/driving.py).
"""

from .checkers import CheckerOptions, Violation
from .cluster import Cluster, SimNode
from .network import NetworkFaults
from .report import Report
from .runner import run_scenario
from .scenarios import SCENARIOS
from .workload import Workload, WorkloadMix

__all__ = [
    "SCENARIOS",
    "CheckerOptions",
    "Cluster",
    "NetworkFaults",
    "Report",
    "SimNode",
    "Violation",
    "Workload",
    "WorkloadMix",
    "run_scenario",
]
