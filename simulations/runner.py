"""Runs: one scenario on one seed (`run`), one scenario over many seeds (`sweep`), or every
scenario on one seed, one line each (`table`).

A run is: build the cluster from the seed, the scenario's fault phase, the heal, the
liveness phase (convergence within the scenario's bound), the final checks, the report.
The run command prints the seed first, so that even a run that dies half-way has told
how to replay it; a failing run ends with the exact command that replays it.

The core under test is `gossipnode.core.node:NodeCore` unless `--core MODULE:NAME` names
another class or factory with the same constructor (the tests use a small stand-in).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import sys
import time
from collections.abc import Iterator, Sequence

from gossipnode.config import NodeConfig

from .checkers import DEFAULT_OPTIONS, CheckerOptions
from .cluster import Cluster, CoreFactory
from .report import Report, replay_command
from .scenarios import SCENARIOS

__all__ = ["DEFAULT_CORE", "load_core", "main", "run_scenario"]

DEFAULT_CORE = "gossipnode.core.node:NodeCore"
DEFAULT_NODES = 100
# Allocations between two young-generation garbage collections during a run (Python's
# default is 700). A run allocates millions of short-lived messages that hold no cycles,
# and each collection walks every young object: at the default, collecting costs about a
# seventh of a run's CPU time and finds almost nothing. At 100,000 it still cost a
# twentieth of a 200-member run (each collection walked a few hundred thousand survivors,
# finding nothing); at a million, about what no collection at all costs (93.4 s, 94.0 s and
# 97.6 s of CPU at 200 members with none, a million and 100,000).
GC_YOUNG_ALLOCATIONS = 1_000_000
# Young collections between two collections of the middle generation: one, so that the
# older generations are collected once per GC_MIDDLE_ALLOCATIONS as before (100,000 young
# allocations times Python's 10). Keeping Python's 10 with a million made those ten times
# rarer, and a 400-member run peaked at 1,841 MiB instead of 1,450; with one, 1,439.
GC_MIDDLE_ALLOCATIONS = 1_000_000


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_ALLOCATIONS, GC_MIDDLE_ALLOCATIONS // GC_YOUNG_ALLOCATIONS,
                     *before[2:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def load_core(spec: str) -> CoreFactory:
    """Import `module:name`. Raises ImportError or AttributeError with the spec named."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ImportError(f"--core {spec!r}: expected MODULE:NAME")
    return getattr(importlib.import_module(module_name), attribute)


def run_scenario(scenario_name: str, *, nodes: int, seed: int, core_factory: CoreFactory,
                 core_spec: str | None = None, checker_options: CheckerOptions =
                 DEFAULT_OPTIONS) -> Report:
    """Run one scenario on one seed and report. `core_spec` only shapes the replay line."""
    with _fewer_collections():
        return _run_scenario(scenario_name, nodes=nodes, seed=seed, core_factory=core_factory,
                    core_spec=core_spec, checker_options=checker_options)


def _run_scenario(scenario_name: str, *, nodes: int, seed: int, core_factory: CoreFactory,
         core_spec: str | None, checker_options: CheckerOptions) -> Report:
    scenario = SCENARIOS[scenario_name]
    cluster = Cluster(core_factory, nodes=nodes, seed=seed,
                      base_config=scenario.configure(NodeConfig()),
                      checker_options=checker_options)
    scenario.run(cluster)
    cluster.heal()
    converge_s = cluster.run_until_converged(scenario.bound_s)
    checkers = cluster.checkers
    gaps = [] if converge_s is not None else checkers.convergence_gaps()
    if converge_s is not None:
        checkers.check_converged_state()
    checkers.final_sweep()
    network = cluster.network
    return Report(
        scenario=scenario_name,
        seed=seed,
        nodes=nodes,
        converged=converge_s is not None,
        converge_s=converge_s,
        messages=cluster.messages,
        bytes=cluster.bytes,
        violations=list(checkers.violations),
        violations_total=sum(checkers.violation_counts.values()),
        steps=cluster.steps,
        virtual_s=cluster.elapsed_s,
        acknowledged_writes=len(checkers.acknowledged),
        refused_commands=cluster.refused,
        gaps=gaps,
        network={
            "sent": network.sent,
            "connections": network.connections,
            "resets": network.resets,
            "overflows": network.overflows,
            "dial failures": network.dial_failures,
            "dropped in backoff": network.dropped_backoff,
            "held": network.held,
            "encoded": cluster.codec.encodes,
            "decoded": cluster.codec.decodes,
        },
        events=dict(sorted(cluster.event_counts.items())),
        sent=dict(sorted(cluster.sent_by_type.items())),
        replay=replay_command(scenario_name, nodes, seed, core_spec),
    )


def _seed_range(text: str) -> range:
    first, sep, last = text.partition("-")
    if not first.isdigit() or (sep and not last.isdigit()):
        raise argparse.ArgumentTypeError(f"expected A-B or A, got {text!r}")
    start = int(first)
    stop = int(last) if sep else start
    if stop < start:
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}")
    return range(start, stop + 1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulations",
                                     description="Deterministic cluster simulations.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one scenario on one seed")
    sweep = commands.add_parser("sweep", help="run one scenario on many seeds")
    for command in (run, sweep):
        command.add_argument("scenario", choices=sorted(SCENARIOS))
        command.add_argument("--nodes", type=int, default=DEFAULT_NODES)
        command.add_argument("--core", default=DEFAULT_CORE,
                             help=f"MODULE:NAME of the core under test ({DEFAULT_CORE})")
        command.add_argument("--json", action="store_true", help="print JSON")
        command.add_argument("--timing", action="store_true",
                             help="also print wall time (makes output non-deterministic)")
    run.add_argument("--seed", type=int, required=True)
    sweep.add_argument("--seeds", type=_seed_range, required=True, help="A-B, inclusive")
    table = commands.add_parser("table", help="run every scenario on one seed, one line each")
    table.add_argument("--nodes", type=int, default=DEFAULT_NODES)
    table.add_argument("--seed", type=int, default=1)
    table.add_argument("--core", default=DEFAULT_CORE,
                       help=f"MODULE:NAME of the core under test ({DEFAULT_CORE})")
    table.add_argument("--json", action="store_true", help="print JSON")
    table.add_argument("--timing", action="store_true",
                       help="also print wall and CPU time (makes output non-deterministic)")
    commands.add_parser("list", help="list the scenarios")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.command == "list":
        for name, scenario in SCENARIOS.items():
            print(f"{name:20} {scenario.description}")
        return 0
    if arguments.nodes < 1:
        print("--nodes must be at least 1", file=sys.stderr)
        return 2
    try:
        core_factory = load_core(arguments.core)
    except (ImportError, AttributeError) as error:
        print(f"cannot load the core {arguments.core!r}: {error}", file=sys.stderr)
        return 2
    core_spec = None if arguments.core == DEFAULT_CORE else arguments.core
    if arguments.command == "run":
        return _run(arguments, core_factory, core_spec)
    if arguments.command == "table":
        return _table(arguments, core_factory, core_spec)
    return _sweep(arguments, core_factory, core_spec)


def _run(arguments: argparse.Namespace, core_factory: CoreFactory,
         core_spec: str | None) -> int:
    if not arguments.json:
        print(f"seed {arguments.seed}", flush=True)
    started = time.perf_counter()
    report = run_scenario(arguments.scenario, nodes=arguments.nodes, seed=arguments.seed,
                          core_factory=core_factory, core_spec=core_spec)
    wall_s = time.perf_counter() - started
    if arguments.json:
        document = json.loads(report.to_json())
        if arguments.timing:
            document["wall_s"] = round(wall_s, 3)
        print(json.dumps(document, sort_keys=True))
    else:
        print(report.to_text())
        if arguments.timing:
            print(f"wall time {wall_s:.3f} s")
    return 0 if report.passed else 1


def _sweep(arguments: argparse.Namespace, core_factory: CoreFactory,
           core_spec: str | None) -> int:
    failing = []
    started = time.perf_counter()
    for seed in arguments.seeds:
        report = run_scenario(arguments.scenario, nodes=arguments.nodes, seed=seed,
                              core_factory=core_factory, core_spec=core_spec)
        if not report.passed:
            failing.append(report)
        if not arguments.json:
            verdict = "pass" if report.passed else (
                "not converged" if not report.converged
                else f"{report.violations_total} violations")
            print(f"seed {seed}: {verdict}", flush=True)
    wall_s = time.perf_counter() - started
    seeds = arguments.seeds
    if arguments.json:
        document = {
            "scenario": arguments.scenario, "nodes": arguments.nodes,
            "seeds": [seeds.start, seeds.stop - 1],
            "failing": [{"seed": r.seed, "replay": r.replay, "converged": r.converged,
                         "violations": r.violations_total} for r in failing],
        }
        if arguments.timing:
            document["wall_s"] = round(wall_s, 3)
        print(json.dumps(document, sort_keys=True))
    else:
        print(f"{len(failing)} of {len(seeds)} seeds failed")
        for report in failing:
            print(f"  seed {report.seed}: {report.replay}")
        if arguments.timing:
            print(f"wall time {wall_s:.3f} s")
    return 1 if failing else 0


def _table(arguments: argparse.Namespace, core_factory: CoreFactory,
           core_spec: str | None) -> int:
    rows = []
    if not arguments.json:
        header = (f"{'scenario':20} {'result':6} {'converge_s':>10} {'messages':>9} "
                  f"{'MB':>8} {'steps':>9}")
        print(header + (f" {'wall_s':>8} {'cpu_s':>8}" if arguments.timing else ""),
              flush=True)
    for name in SCENARIOS:
        started, cpu_started = time.perf_counter(), time.process_time()
        report = run_scenario(name, nodes=arguments.nodes, seed=arguments.seed,
                              core_factory=core_factory, core_spec=core_spec)
        row = {"scenario": name, "passed": report.passed, "converge_s": report.converge_s,
               "messages": report.messages, "bytes": report.bytes, "steps": report.steps,
               "replay": report.replay}
        if arguments.timing:
            row["wall_s"] = round(time.perf_counter() - started, 3)
            row["cpu_s"] = round(time.process_time() - cpu_started, 3)
        rows.append(row)
        if not arguments.json:
            converge = "-" if report.converge_s is None else f"{report.converge_s:.3f}"
            line = (f"{name:20} {'pass' if report.passed else 'FAIL':6} {converge:>10} "
                    f"{report.messages:>9} {report.bytes / 1e6:>8.1f} {report.steps:>9}")
            if arguments.timing:
                line += f" {row['wall_s']:>8.1f} {row['cpu_s']:>8.1f}"
            print(line, flush=True)
    if arguments.json:
        print(json.dumps({"nodes": arguments.nodes, "seed": arguments.seed, "scenarios": rows},
                         sort_keys=True))
    return 0 if all(row["passed"] for row in rows) else 1
