"""The convergence and placement checks of the liveness phase, from ground truth. Mixed
into `Checkers` (checkers.py), which holds the truth they read.

- convergence, polled: every pair of live members holds the same records (tombstones
  included) for every dataset both must hold, compared by the tracked stores' digests;
  each mailbox is held by exactly its R owners.
- after convergence (`check_converged_state`): every acknowledged write is present (that
  version or a newer one) everywhere it must be; converged deletes are then watched for
  resurrection.
- after the liveness phase (`check_placement`): each mailbox on exactly its owners, judged
  by the oracle's rendezvous hashing (oracle.py), never by the core's functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gossipnode.core.catalog import Scope
from gossipnode.core.catalog import dataset as lookup_dataset
from gossipnode.core.records import Record, Version

from .oracle import TruthPolicy, mailbox_of, owners
from .tracked_store import WEB_MESSENGER

if TYPE_CHECKING:
    from .cluster import Cluster, SimNode

__all__ = ["ConvergenceChecks"]


class ConvergenceChecks:
    """Mixed into `Checkers`, which provides the attributes and methods declared here."""

    cluster: Cluster
    policy: TruthPolicy
    acknowledged: dict[tuple[str, str], Record]
    _converged_deletes: dict[tuple[str, str], Version]
    _owners_cache: dict[str, frozenset[bytes] | None]
    _members: list[tuple[bytes, str, dict[str, str]]]
    _owners_epoch: int
    _ineligible: dict[int, float | None]
    violate: Callable[[str, str], None]
    eligible: Callable[[SimNode], bool]
    _check_purged: Callable[[SimNode, float], None]

    def _owners(self, mailbox: str) -> frozenset[bytes] | None:
        cluster = self.cluster
        if self._owners_epoch != cluster.membership_epoch:
            self._owners_cache.clear()
            self._owners_epoch = cluster.membership_epoch
            self._members = [(n.node_id, n.name, n.tags) for n in cluster.live_nodes()]
        if mailbox not in self._owners_cache:
            self._owners_cache[mailbox] = owners(mailbox, self._members, self.policy)
        return self._owners_cache[mailbox]

    def mailboxes(self) -> list[str]:
        found: dict[str, None] = {}
        for dataset, key in self.acknowledged:
            if dataset == WEB_MESSENGER:
                found[mailbox_of(key)] = None
        return list(found)

    def convergence_gaps(self, limit: int = 3) -> list[str]:
        """Why the live members have not converged (empty when they have)."""
        gaps: list[str] = []
        live = self.cluster.live_nodes()
        if not live:
            return gaps
        first = live[0]
        for node in live[1:]:
            if node.store.digest_all != first.store.digest_all:
                gaps.append(f"{node.name} and {first.name} differ in shared datasets")
                break
        eligible = [node for node in live if self.eligible(node)]
        for node in eligible[1:]:
            if node.store.digest_private != eligible[0].store.digest_private:
                gaps.append(f"{node.name} and {eligible[0].name} differ in private_keys")
                break
        for node in live:
            if node.store.count_private and not self.eligible(node):
                gaps.append(f"ineligible {node.name} holds private keys")
                break
        if self.policy.wep_replication:
            by_id = {node.node_id: node for node in live}
            for mailbox in self.mailboxes():
                owners = self._owners(mailbox) or ()
                if not owners:
                    # No member may own mailboxes (no WEP member is left): they stay where
                    # they are, since dropping them would lose them.
                    continue
                digests = {by_id[o].store.mailbox_digests.get(mailbox, 0) for o in owners}
                if len(digests) > 1:
                    gaps.append(f"owners of mailbox {mailbox} differ")
                holders = [n for n in live if mailbox in n.store.mailbox_counts
                           and n.node_id not in owners]
                if holders:
                    gaps.append(f"{holders[0].name} holds mailbox {mailbox} it does not own")
                if len(gaps) >= limit:
                    break
        return gaps[:limit]

    def converged(self) -> bool:
        return not self.convergence_gaps(limit=1)

    def check_converged_state(self) -> None:
        """After convergence: every acknowledged write is where it must be; then watch
        the converged deletes for resurrection."""
        live = self.cluster.live_nodes()
        for (dataset, key), latest in self.acknowledged.items():
            scope = lookup_dataset(dataset).scope
            if scope is Scope.ALL:
                holders = live
            elif scope is Scope.PRIVATE_KEY_ELIGIBLE:
                holders = [node for node in live if self.eligible(node)]
            elif self.policy.wep_replication:
                owners = self._owners(mailbox_of(key)) or ()
                holders = [node for node in live if node.node_id in owners]
            else:
                continue
            for node in holders:
                held = node.store.get(dataset, key)
                if held is None and latest.value is None:
                    continue  # a collected tombstone
                if held is None or held.version < latest.version:
                    if latest.value is None and held is not None and held.value is not None:
                        self.violate("resurrection", f"{node.name} holds {dataset}/{key} "
                                     "from before its converged delete")
                    else:
                        self.violate("durability", f"acknowledged write {dataset}/{key} "
                                     f"missing on {node.name} after convergence")
                    break
            if latest.value is None:
                self._converged_deletes[(dataset, key)] = latest.version

    def check_placement(self) -> None:
        """After the liveness phase: each mailbox on exactly its owners by truth (the
        oracle's rendezvous hashing), wherever any live member holds it."""
        if not self.policy.wep_replication:
            return
        live = self.cluster.live_nodes()
        for mailbox in self.mailboxes():
            owned_by = self._owners(mailbox)
            holders = [node for node in live if mailbox in node.store.mailbox_counts]
            if not owned_by or not holders:
                continue
            strays = [node.name for node in holders if node.node_id not in owned_by]
            missing = [node.name for node in live if node.node_id in owned_by
                       and mailbox not in node.store.mailbox_counts]
            if strays or missing:
                self.violate("placement", f"mailbox {mailbox}: held by non-owners "
                             f"{strays or 'none'}, missing on owners {missing or 'none'}")

    def final_sweep(self) -> None:
        self.check_placement()
        now = self.cluster.queue.now
        for node in self.cluster.nodes:
            if node.index in self._ineligible and node.core is not None:
                self._check_purged(node, now)
