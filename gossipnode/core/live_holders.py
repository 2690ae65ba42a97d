"""The live peers and the holders of each dataset of one holders basis
(`ScopeView.holders_basis`, core/scopes.py), and how they follow from the previous basis's.

Rules:
1. A list is sorted by node id and is what a pass over every member gives: the live
   members other than this node (`peers`), those of them that must hold every record of a
   dataset whose holders do not depend on the key (`by_dataset`).
2. Every change of a member's liveness or tags makes a new basis (member_views.py), and
   with ~n**2 such changes in a partition and heal, a pass over every member at the first
   push after each cost O(n**3) in all. So a basis that follows another of the same policy
   keeps it as `base`, with the members changed since (`changed`), and takes each list
   `base` worked out with those members removed and put back where they belong now:
   O(changes) sorted insertions, not O(n) calls of `holds`. With more than
   DERIVED_CHANGES_MAX changes (and one in eight of the list) it makes a full pass.
3. A basis lets go of its own base once another follows it, so no chain of bases grows.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["DERIVED_CHANGES_MAX", "LiveHolders", "updated"]

DERIVED_CHANGES_MAX = 32


@dataclass
class LiveHolders:
    peers: list[bytes] | None = None
    by_dataset: dict[str, tuple[bytes, ...]] = field(default_factory=dict)
    base: LiveHolders | None = None
    changed: set[bytes] = field(default_factory=set)

    def derivable(self, held: Sequence[bytes] | None) -> bool:
        """Whether `held`, a list of `base`, is worth bringing up to date (rule 2)."""
        return held is not None and len(self.changed) <= max(DERIVED_CHANGES_MAX,
                                                             len(held) // 8)


def updated(held: Sequence[bytes], changed: set[bytes],
            belongs: Callable[[bytes], bool]) -> list[bytes]:
    """`held` (sorted) with each member of `changed` removed, then put back in its place if
    it `belongs` now (rule 2)."""
    result = list(held)
    for node_id in changed:
        at = bisect_left(result, node_id)
        if at < len(result) and result[at] == node_id:
            del result[at]
        if belongs(node_id):
            insort(result, node_id)
    return result
