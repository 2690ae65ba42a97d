"""What the sessions a peer opens may make this node send it (anti_entropy.py rule 9).

A new or restored member needs one full copy of a dataset; a peer that keeps claiming an
empty store must get one per `STREAM_WINDOW_S`, not one per request. So each (peer, dataset)
has a budget of one copy, the dataset's size in records: what sessions the peer opened send
it is spent from the budget, and the budget refills at one copy per `STREAM_WINDOW_S`,
continuously. An opening that finds less than one record owed is refused.

Continuously, not per fixed window: partitions that heal several times within a minute each
move a part of the dataset to the same peers, legitimately, and together more than one copy;
a peer sent half the dataset is owed the other half at once and a whole copy again half a
window later. A fixed window counted them all against one copy and refused the next heal's
sessions until the window ended. The bound on what requests cost is the same: on average one
copy per window.
"""

from __future__ import annotations

__all__ = ["STREAMED_KEYS_PRUNE", "STREAM_WINDOW_S", "StreamBudget"]

# One copy of a dataset per this, per peer: several anti-entropy rounds long.
STREAM_WINDOW_S = 60.0
# The table is swept of refilled budgets once it holds more keys than this (peers times
# datasets of a large cluster), so it returns to its baseline after a flood.
STREAMED_KEYS_PRUNE = 1024


class StreamBudget:
    def __init__(self) -> None:
        # (peer, dataset) -> (when last spent, spent then, refill per second)
        self._spent: dict[tuple[bytes, str], tuple[float, float, float]] = {}

    def owed(self, peer: bytes, dataset: str, full: int, now: float) -> float:
        """Records this node may still send `peer` from `dataset` (`full`: its size)."""
        if len(self._spent) > STREAMED_KEYS_PRUNE:
            self._spent = {key: entry for key, entry in self._spent.items()
                           if self._left(entry, now) > 0}  # fmt: skip
        entry = self._spent.get((peer, dataset))
        return full - (0.0 if entry is None else self._left(entry, now))

    def spend(self, peer: bytes, dataset: str, records: int, full: int, now: float) -> None:
        """`records` of `dataset` (`full` records in all) went to `peer` in its sessions."""
        entry = self._spent.get((peer, dataset))
        spent = 0.0 if entry is None else self._left(entry, now)
        self._spent[(peer, dataset)] = (now, spent + records, full / STREAM_WINDOW_S)

    def __len__(self) -> int:
        return len(self._spent)

    @staticmethod
    def _left(entry: tuple[float, float, float], now: float) -> float:
        at, spent, refill = entry
        return max(0.0, spent - (now - at) * refill)
