"""Lifeguard's local health awareness: when we are the slow one, probe less eagerly.

A score from 0 (healthy) to `awareness_max`. It rises when our probes fail without the
relays' nacks that a healthy network would bring back (so the fault is likely ours), and
when we must refute a suspicion of ourselves; it falls by one with every successful probe.
Our probe interval and probe timeout are multiplied by (1 + score), so a struggling member
accuses others less often and gives their acks more time (memberlist's awareness.go).
"""

from __future__ import annotations

__all__ = ["Awareness"]


class Awareness:
    __slots__ = ("maximum", "score")

    def __init__(self, maximum: int) -> None:
        assert maximum >= 0
        self.maximum = maximum
        self.score = 0

    def apply(self, delta: int) -> None:
        self.score = min(max(self.score + delta, 0), self.maximum)

    def scale(self, seconds: float) -> float:
        return seconds * (1 + self.score)
