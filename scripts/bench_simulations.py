"""Benchmark the simulator: wall and CPU time, steps and messages per second of one scenario
run at several cluster sizes.

    python scripts/bench_simulations.py [--core tests.simulations.standin:StandinCore] \
        [--scenario partition-heal] [--nodes 100 1000] [--seed 1] [--json]

The figures measure the harness together with the core under test; with the tests'
stand-in core they are an upper bound for the harness alone. Peak memory is the
process's maximum resident set size, so it is only meaningful for the largest run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulations.runner import DEFAULT_CORE, load_core, run_scenario


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--core", default=DEFAULT_CORE)
    parser.add_argument("--scenario", default="partition-heal")
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    core_factory = load_core(arguments.core)
    results = []
    for nodes in arguments.nodes:
        started, cpu_started = time.perf_counter(), time.process_time()
        report = run_scenario(arguments.scenario, nodes=nodes, seed=arguments.seed,
                              core_factory=core_factory)
        wall_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
        results.append({
            "scenario": arguments.scenario,
            "nodes": nodes,
            "seed": arguments.seed,
            "passed": report.passed,
            "converge_s": report.converge_s,
            "virtual_s": report.virtual_s,
            "wall_s": round(wall_s, 3),
            # CPU time of this process: on a shared machine, the figure that does not
            # depend on what else runs.
            "cpu_s": round(cpu_s, 3),
            "steps": report.steps,
            "steps_per_s": round(report.steps / wall_s),
            "messages": report.messages,
            "messages_per_s": round(report.messages / wall_s),
            # Messages per CPU second of this process: the harness's and the core's cost
            # per simulated message, the figure to compare across runs on a shared machine.
            "messages_per_cpu_s": round(report.messages / cpu_s),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            # Messages sent by class, the most first: where the traffic comes from.
            "sent": dict(sorted(report.sent.items(), key=lambda item: (-item[1], item[0]))),
        })
        if not arguments.json:
            result = results[-1]
            print(f"{result['scenario']} {nodes} nodes: wall {result['wall_s']:.1f} s "
                  f"(cpu {result['cpu_s']:.1f} s) for "
                  f"{result['virtual_s']:.0f} virtual s, {result['steps']} steps "
                  f"({result['steps_per_s']}/s), {result['messages']} messages "
                  f"({result['messages_per_s']}/s, {result['messages_per_cpu_s']} per cpu s), "
                  f"converged after {result['converge_s']} s, "
                  f"{'pass' if result['passed'] else 'FAIL'}, peak RSS "
                  f"{result['peak_rss_mib']} MiB", flush=True)
            print("  sent: " + ", ".join(f"{name} {count}"
                                         for name, count in result["sent"].items()), flush=True)
    if arguments.json:
        print(json.dumps(results, sort_keys=True))
    return 0 if all(result["passed"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
