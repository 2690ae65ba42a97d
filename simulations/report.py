"""The report of one run: what the run command prints, as text or as one JSON object.

Reports are deterministic: the same seed gives the same bytes. Nothing in them depends on
wall time, hashing or memory addresses; wall time is printed only on request (--timing),
as a separate line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .checkers import Violation

__all__ = ["Report", "replay_command"]


def replay_command(scenario: str, nodes: int, seed: int, core: str | None = None) -> str:
    command = f"python -m simulations run {scenario} --nodes {nodes} --seed {seed}"
    return command if core is None else f"{command} --core {core}"


@dataclass(slots=True)
class Report:
    scenario: str
    seed: int
    nodes: int
    converged: bool
    converge_s: float | None  # virtual seconds from the heal to convergence
    messages: int
    bytes: int  # the wire encoding of every message sent (payload.py)
    violations: list[Violation]
    steps: int
    virtual_s: float
    acknowledged_writes: int
    refused_commands: int
    gaps: list[str]  # why the cluster did not converge (empty when it did)
    network: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    # Messages sent, by message class: which part of the protocol the traffic is.
    sent: dict[str, int] = field(default_factory=dict)
    replay: str = ""
    violations_total: int = 0

    @property
    def passed(self) -> bool:
        return self.converged and not self.violations

    def to_json(self) -> str:
        document = asdict(self)
        document["passed"] = self.passed
        return json.dumps(document, sort_keys=True)

    def to_text(self) -> str:
        lines = [
            f"scenario {self.scenario}, {self.nodes} nodes",
            f"converged in {self.converge_s:.3f} s after the heal" if self.converged
            else "NOT converged: " + "; ".join(self.gaps),
            f"messages {self.messages}, bytes {self.bytes} (encoded)",
            f"steps {self.steps}, virtual time {self.virtual_s:.3f} s",
            f"writes acknowledged {self.acknowledged_writes}, commands refused "
            f"{self.refused_commands}",
            "network " + ", ".join(f"{k} {v}" for k, v in sorted(self.network.items())),
            "events " + ", ".join(f"{k} {v}" for k, v in sorted(self.events.items())),
            "sent " + ", ".join(f"{k} {v}" for k, v in sorted(self.sent.items())),
        ]
        if self.violations:
            lines.append(f"violations {self.violations_total} (first ones listed):")
            lines.extend(f"  step {v.step} at {v.time_s:.3f} s: {v.kind}: {v.detail}"
                         for v in self.violations)
        else:
            lines.append("violations none")
        lines.append("PASS" if self.passed else f"FAIL, replay: {self.replay}")
        return "\n".join(lines)
