"""Lifeguard's suspicion timer: the timeout shrinks as independent confirmations arrive.

A member suspected by one peer may be that peer's problem; suspected by several, it is
probably down. So the timeout starts at `maximum_s` and falls towards `minimum_s` as
distinct members confirm, on a log curve reaching `minimum_s` after `expected`
confirmations (memberlist's suspicion.go). Who counts as a confirmer is the caller's
rule (state.py rule 2: a member telling of its own suspicion, not a reporter it names):

    timeout = max(minimum_s, maximum_s - (maximum_s - minimum_s) * log(c + 1) / log(k + 1))

with `c` confirmations so far and `k = expected`. When `k` is 0 (too few members to
confirm) the timeout is `minimum_s` from the start.
"""

from __future__ import annotations

import math

__all__ = ["Suspicion", "suspicion_bounds_s"]


def suspicion_bounds_s(
    suspicion_mult: int, suspicion_max_timeout_mult: int, probe_interval_s: float, members: int
) -> tuple[float, float]:
    """(minimum, maximum) suspicion timeout for a cluster of `members` (memberlist's formula:
    minimum = suspicion_mult * log10(max(n, 1) + 1) * probe_interval_s, never below one
    probe interval; maximum = suspicion_max_timeout_mult * minimum)."""
    minimum_s = max(
        suspicion_mult * math.log10(max(members, 1) + 1) * probe_interval_s, probe_interval_s
    )
    return minimum_s, suspicion_max_timeout_mult * minimum_s


class Suspicion:
    """One suspicion of one member at one incarnation."""

    __slots__ = ("confirmers", "expected", "incarnation", "maximum_s", "minimum_s", "started_at")

    def __init__(
        self,
        incarnation: int,
        reporter: bytes,
        started_at: float,
        minimum_s: float,
        maximum_s: float,
        expected: int,
    ) -> None:
        assert 0 < minimum_s <= maximum_s, (minimum_s, maximum_s)
        assert expected >= 0, expected
        self.incarnation = incarnation
        self.started_at = started_at
        self.minimum_s = minimum_s
        self.maximum_s = maximum_s
        self.expected = expected
        # The first reporter started it; only others confirm.
        self.confirmers = {reporter}

    def confirm(self, reporter: bytes) -> bool:
        """Count `reporter` once (the caller vouches that it confirmed: state.py rule 2); True
        if it is a new, useful confirmation."""
        if reporter in self.confirmers or len(self.confirmers) - 1 >= self.expected:
            return False
        self.confirmers.add(reporter)
        return True

    @property
    def timeout_s(self) -> float:
        if self.expected == 0:
            return self.minimum_s
        confirmations = len(self.confirmers) - 1
        fraction = math.log(confirmations + 1) / math.log(self.expected + 1)
        return max(self.minimum_s, self.maximum_s - (self.maximum_s - self.minimum_s) * fraction)

    @property
    def deadline(self) -> float:
        return self.started_at + self.timeout_s
