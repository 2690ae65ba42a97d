"""Hybrid logical clock (Kulkarni et al., 2014).

Rules:
1. Stamps this clock issues strictly increase, even when the wall clock jumps backwards:
   the clock keeps the highest wall time it has seen and counts up within it.
2. Observing a remote stamp moves the clock past it, so a write made after reading a record
   always gets a higher version than that record (causality survives clock skew).
3. A remote stamp more than `drift_max_ms` ahead of our wall clock is refused: accepting it
   would drag every later stamp of ours into the future.

The wall time is an argument, never read here.
"""

from __future__ import annotations

from .errors import RemoteProtocolError
from .records import COUNTER_MAX, Version

__all__ = ["ClockDriftError", "HybridClock"]


class ClockDriftError(RemoteProtocolError):
    """A remote stamp runs further ahead of our wall clock than allowed."""


class HybridClock:
    def __init__(self, origin: bytes, drift_max_ms: int) -> None:
        self.origin = origin
        self.drift_max_ms = drift_max_ms
        self._wall_ms = 0
        self._counter = 0

    def stamp(self, wall_ms: int) -> Version:
        """A new version, higher than every one issued or observed before."""
        if wall_ms > self._wall_ms:
            self._wall_ms, self._counter = wall_ms, 0
        else:
            self._advance_counter()
        return Version(self._wall_ms, self._counter, self.origin)

    def observe(self, remote: Version, wall_ms: int) -> None:
        """Move past a remote stamp. Raises ClockDriftError when it is too far ahead."""
        if remote.wall_ms > wall_ms + self.drift_max_ms:
            raise ClockDriftError(
                f"remote stamp is {remote.wall_ms - wall_ms} ms ahead of our clock "
                f"(at most {self.drift_max_ms} ms allowed)"
            )
        if remote.wall_ms > self._wall_ms:
            self._wall_ms, self._counter = remote.wall_ms, remote.counter
        elif remote.wall_ms == self._wall_ms and remote.counter > self._counter:
            self._counter = remote.counter

    def _advance_counter(self) -> None:
        if self._counter == COUNTER_MAX:
            # Over four billion stamps in one millisecond: borrow the next millisecond.
            self._wall_ms, self._counter = self._wall_ms + 1, 0
        else:
            self._counter += 1
