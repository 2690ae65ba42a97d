"""The live peers and the holders of each dataset of one holders basis
(`ScopeView.holders_basis`, core/scopes.py), and how they follow from earlier bases'.

Rules:
1. A list is sorted by node id and is what a pass over every member gives: the live
   members other than this node (`peers`), those of them that must hold every record of a
   dataset whose holders do not depend on the key (`by_dataset`).
2. Every change of a member's liveness or tags makes a new basis (member_views.py), and
   with ~n**2 such changes in a partition and heal, a pass over every member at the first
   push after each cost O(n**3) in all. So a basis that follows another of the same policy
   (`follow`) takes over, per list, the latest one worked out by an earlier basis together
   with the members changed since, and works its own out from it by removing those members
   and putting back the ones that belong now: O(changes) sorted insertions, not O(n) calls
   of `holds`. With more than DERIVED_CHANGES_MAX changes (and one in eight of the list)
   it makes a full pass.
3. A basis hands the lists it carries on to the one that follows it and keeps none, so
   the lists of old bases are not kept alive one behind another.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["DERIVED_CHANGES_MAX", "LiveHolders"]

DERIVED_CHANGES_MAX = 32

# A list worked out by an earlier basis, and the members changed since.
Carried = tuple[Sequence[bytes], set[bytes]]


@dataclass
class LiveHolders:
    peers: list[bytes] | None = None
    by_dataset: dict[str, tuple[bytes, ...]] = field(default_factory=dict)
    # What this basis may work its lists out from (rule 2).
    carried_peers: Carried | None = None
    carried: dict[str, Carried] = field(default_factory=dict)

    def follow(self, previous: LiveHolders, changed: set[bytes]) -> None:
        """This basis follows `previous`, with the members in `changed` changed since."""
        self.carried_peers = _carry(previous.peers, previous.carried_peers, changed)
        carried = {}
        for dataset in {*previous.by_dataset, *previous.carried}:
            kept = _carry(previous.by_dataset.get(dataset), previous.carried.get(dataset),
                          changed)
            if kept is not None:
                carried[dataset] = kept
        self.carried = carried
        previous.carried_peers, previous.carried = None, {}  # rule 3

    def derived_peers(self, belongs: Callable[[bytes], bool]) -> list[bytes] | None:
        return _derive(self.carried_peers, belongs)

    def derived(self, dataset: str, belongs: Callable[[bytes], bool]) -> list[bytes] | None:
        return _derive(self.carried.get(dataset), belongs)


def _carry(held: Sequence[bytes] | None, carried: Carried | None,
           changed: set[bytes]) -> Carried | None:
    if held is not None:
        return held, changed
    if carried is None:
        return None
    since = carried[1] | changed
    return (carried[0], since) if _small(carried[0], since) else None


def _small(held: Sequence[bytes], changed: set[bytes]) -> bool:
    return len(changed) <= max(DERIVED_CHANGES_MAX, len(held) // 8)


def _derive(carried: Carried | None, belongs: Callable[[bytes], bool]) -> list[bytes] | None:
    """The carried list with each changed member removed, then put back in its place if it
    `belongs` now (rule 2); None when nothing is carried or too much changed."""
    if carried is None or not _small(*carried):
        return None
    held, changed = carried
    result = list(held)
    for node_id in changed:
        at = bisect_left(result, node_id)
        if at < len(result) and result[at] == node_id:
            del result[at]
        if belongs(node_id):
            insort(result, node_id)
    return result
