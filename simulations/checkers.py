"""The invariant checkers of docs/architecture.md, computed from ground truth.

Ground truth is what the harness itself did: the tags it configured on each node, the
policy records it wrote, every write a core acknowledged. Checkers never ask a node for
its own (possibly wrong) view; they compare what nodes HOLD and what they SEND with what
the truth says they may hold and send.

The rules checked, and when:

- containment, at every send and every delivery:
  * a message carrying a record of a node-local dataset is a violation when it is sent;
  * a message carrying a `private_keys` record, delivered to node X, is a violation when
    X is not eligible by truth AND its sender had no excuse. X's own opt-in tag is its
    configuration: a tag that was off when the node started is never excused; a tag
    switched off at run time excuses messages sent within `tag_grace_s` of the switch
    (the time membership gossip needs to carry the new tag), counted from the switch, the
    node's last start or the last heal of the network, whichever is latest; while any
    partition is in place the tag may not cross it, so such messages are excused.
    A policy denial excuses the sender only while the sender's STORE does not yet hold
    the denial record (the record itself, version and all, not the sender's computed
    view): once the sender holds the denial, sending X a private key is a bug. This is
    judged at send time, so messages in flight across a policy change are judged by what
    their sender knew when it sent them.
  * an ineligible node's store must hold no `private_keys` record `purge_grace_s` after
    the node learned of its ineligibility (its tag went off, or the denial record reached
    its store), except a record no eligible live member holds (that version or newer):
    that is the last copy of an acknowledged write, which the node must hand off before
    it drops it (purging it would trade containment for lost data). Knowing which keys
    are safe elsewhere takes messages, so the grace runs from the later of learning and
    the last heal of the network, and is suspended while a partition is in place.
    Checked after every step the node takes, and at the end.
- placement, at every store change: the last copy of a live mailbox message (over all
  stores, crashed ones included) must never be removed; and after the liveness phase
  each mailbox is on exactly its R owners, judged by the oracle (oracle.py).
- eligibility and placement are judged by the oracle, the checkers' own model of the
  written rules, never by the core's functions.
- durability, at every acknowledgement: the acknowledged record is in the node's store;
  a refused write left the store as it was (a failing disk refuses cleanly).
- no resurrection, at every store change: after a delete converged, a store must never
  take in an older value of that key.
- durability, at restart: every write to an `all`-scope dataset a node acknowledged is
  still in its store (that version or newer) after a crash, unless the node was away for
  longer than the tombstone horizon (it must then quarantine itself and may drop its
  data; the cluster-wide check covers those writes). Private keys and mailboxes are left
  out here: a node may legitimately purge or hand them off.
- convergence, polled in the liveness phase, and placement after it: convergence.py.

Each violation records the step, the virtual time (seconds since the start), a kind and
a one-line detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gossipnode.core.catalog import Scope
from gossipnode.core.catalog import dataset as lookup_dataset
from gossipnode.core.records import Record, Version

from .convergence import ConvergenceChecks
from .oracle import (
    POLICY_DATASET,
    PRIVATE_KEYS_POLICY_PREFIX,
    TruthPolicy,
    may_hold_private_keys,
)
from .tracked_store import PRIVATE_KEYS, WEB_MESSENGER, TrackedStore

if TYPE_CHECKING:
    from .cluster import Cluster, SimNode

__all__ = ["CheckerOptions", "Checkers", "Violation"]

# A report lists at most this many violations of one kind: a broken core can violate an
# invariant at every step, and a report of a million lines helps nobody.
VIOLATIONS_PER_KIND_MAX = 20


@dataclass(frozen=True, slots=True)
class Violation:
    step: int
    time_s: float  # virtual seconds since the start of the run
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class CheckerOptions:
    # Membership gossip reaches every member of a connected cluster within a few probe
    # rounds, and a full push-pull (every 30 s by default) repairs what gossip missed:
    # two push-pull rounds.
    tag_grace_s: float = 60.0
    # A node that learns it may not hold private keys purges them at its next step at
    # the latest; 10 s allows for a purge batched on a timer.
    purge_grace_s: float = 10.0


DEFAULT_OPTIONS = CheckerOptions()


class Checkers(ConvergenceChecks):
    def __init__(self, cluster: Cluster, options: CheckerOptions = DEFAULT_OPTIONS) -> None:
        self.cluster = cluster
        self.options = options
        self.violations: list[Violation] = []
        self.violation_counts: dict[str, int] = {}
        # Ground truth of acknowledged writes: the last-writer-wins winner per key.
        self.acknowledged: dict[tuple[str, str], Record] = {}
        # Per node: the acknowledged writes to `all`-scope datasets it made itself.
        self.acknowledged_by: dict[int, dict[tuple[str, str], Version]] = {}
        self.policy = TruthPolicy()
        self._policy_records: dict[str, Record] = {}
        # Nodes not eligible for private keys by truth, and when each learned it.
        self._ineligible: dict[int, float | None] = {}
        self._purge_reported: dict[int, bool] = {}
        # Stores holding any record (value or tombstone) of each web_messenger key.
        self._key_holders: dict[str, int] = {}
        # Deletes that converged: key -> the tombstone's version.
        self._converged_deletes: dict[tuple[str, str], Version] = {}
        self._owners_cache: dict[str, frozenset[bytes] | None] = {}
        self._members: list[tuple[bytes, str, dict[str, str]]] = []
        self._owners_epoch = -1

    # -- reporting ------------------------------------------------------------------

    def violate(self, kind: str, detail: str) -> None:
        count = self.violation_counts.get(kind, 0) + 1
        self.violation_counts[kind] = count
        if count <= VIOLATIONS_PER_KIND_MAX:
            cluster = self.cluster
            self.violations.append(
                Violation(cluster.steps, cluster.elapsed_s, kind, detail)
            )

    # -- ground truth ---------------------------------------------------------------

    def acknowledge(self, node: SimNode, record: Record) -> None:
        """A core acknowledged this write (put, delete or write_many returned it). It must
        be durable by then: in the node's store, that version or newer."""
        held = node.store.get(record.dataset, record.key)
        if held is None or held.version < record.version:
            self.violate("durability", f"{node.name} acknowledged {record.dataset}/"
                         f"{record.key} before it was in its store")
        if lookup_dataset(record.dataset).scope is Scope.LOCAL:
            return  # node-local: nothing to replicate, nothing to check across nodes
        key = (record.dataset, record.key)
        current = self.acknowledged.get(key)
        if current is None or current.version < record.version:
            self.acknowledged[key] = record
        if lookup_dataset(record.dataset).scope is Scope.ALL:
            self.acknowledged_by.setdefault(node.index, {})[key] = record.version
        if record.dataset == POLICY_DATASET:
            known = self._policy_records.get(record.key)
            if known is None or known.version < record.version:
                self._policy_records[record.key] = record
                self.policy = TruthPolicy.from_records(self._policy_records.values())
                self.truth_changed()

    def eligible(self, node: SimNode) -> bool:
        return may_hold_private_keys(node.node_id, node.tags, self.policy)

    def truth_changed(self) -> None:
        """Tags, policy or membership changed: recompute who is ineligible."""
        self.cluster.membership_epoch += 1
        ineligible: dict[int, float | None] = {}
        for node in self.cluster.nodes:
            if not self.eligible(node):
                ineligible[node.index] = self._ineligible.get(node.index)
                if ineligible[node.index] is None and node.tags.get("private_keys") != "true":
                    # The node knows its own tag at once.
                    ineligible[node.index] = (
                        node.created_at if node.tags_changed_at is None else node.tags_changed_at
                    )
            else:
                self._purge_reported.pop(node.index, None)
        self._ineligible = ineligible

    def _denial(self, node_id: bytes) -> Record | None:
        record = self._policy_records.get(PRIVATE_KEYS_POLICY_PREFIX + node_id.hex())
        if record is not None and node_id in self.policy.denied:
            return record
        return None

    def _knows_denial(self, store: TrackedStore, denial: Record) -> bool:
        held = store.get(POLICY_DATASET, denial.key)
        return held is not None and held.version >= denial.version

    # -- containment ----------------------------------------------------------------

    def on_send(self, source: SimNode, target: SimNode | None,
                records: list[Record]) -> bool:
        """Judge a message at send time; True when delivering it would be a violation."""
        carries_private = False
        for record in records:
            scope = lookup_dataset(record.dataset).scope
            if scope is Scope.LOCAL:
                self.violate("containment", f"{source.name} sent node-local record "
                             f"{record.dataset}/{record.key}")
            elif scope is Scope.PRIVATE_KEY_ELIGIBLE:
                carries_private = True
        if not carries_private or target is None or self.eligible(target):
            return False
        if target.tags.get("private_keys") != "true":
            switched_at = target.tags_changed_at
            if switched_at is None:
                return True
            # Gossip needs a connected network and a running node to spread the new tag.
            network = self.cluster.network
            spreading_since = max(switched_at, network.healed_at, target.started_at)
            if (not network.partitioned
                    and self.cluster.queue.now > spreading_since + self.options.tag_grace_s):
                return True
        denial = self._denial(target.node_id)
        return denial is not None and self._knows_denial(source.store, denial)

    def on_deliver(self, source_name: str, target: SimNode, verdict: bool) -> None:
        if verdict:
            self.violate("containment", f"private key delivered to ineligible "
                         f"{target.name} from {source_name}")

    def after_step(self, node: SimNode) -> None:
        """Called after every input a node's core took."""
        if node.index not in self._ineligible:
            return
        self._check_purged(node, self.cluster.queue.now)

    def _check_purged(self, node: SimNode, now: float) -> None:
        learned_at = self._ineligible[node.index]
        if learned_at is None:
            denial = self._denial(node.node_id)
            if denial is None or not self._knows_denial(node.store, denial):
                return
            learned_at = self._ineligible[node.index] = now
        # A handoff needs a connected network: the grace runs from the later of learning
        # and the last heal, and not at all while a partition is in place.
        network = self.cluster.network
        since = max(learned_at, network.healed_at)
        if (node.store.count_private and not network.partitioned
                and now > since + self.options.purge_grace_s
                and not self._purge_reported.get(node.index)):
            safe = self._private_keys_safe_elsewhere(node)
            if safe:
                self._purge_reported[node.index] = True
                self.violate("containment", f"ineligible {node.name} still holds {safe} "
                             f"private keys held by eligible members too, "
                             f"{now - learned_at:.1f} s after it learned it may not")

    def _private_keys_safe_elsewhere(self, node: SimNode) -> int:
        """How many of the node's private keys an eligible live member holds too (that
        version or newer). The others are the last copies of acknowledged writes: the
        node is excused for keeping them until it has handed them off."""
        keepers = [other.store for other in self.cluster.live_nodes()
                   if other is not node and self.eligible(other)]
        safe = 0
        for record in node.store.replicated(PRIVATE_KEYS):
            for store in keepers:
                held = store.get(PRIVATE_KEYS, record.key)
                if held is not None and held.version >= record.version:
                    safe += 1
                    break
        return safe

    # -- store hooks: placement and resurrection ---------------------------------

    def record_stored(self, store: TrackedStore, old: Record | None, new: Record) -> None:
        key = (new.dataset, new.key)
        if new.value is not None:
            deleted = self._converged_deletes.get(key)
            if deleted is not None and new.version < deleted:
                self.violate("resurrection", f"{self.cluster.nodes[store.owner].name} took "
                             f"back {new.dataset}/{new.key} deleted at {deleted.wall_ms}")
        if new.dataset == WEB_MESSENGER and old is None:
            self._key_holders[new.key] = self._key_holders.get(new.key, 0) + 1

    def record_removed(self, store: TrackedStore, record: Record) -> None:
        if record.dataset != WEB_MESSENGER:
            return
        left = self._key_holders[record.key] - 1
        self._key_holders[record.key] = left
        latest = self.acknowledged.get((WEB_MESSENGER, record.key))
        if left == 0 and latest is not None and latest.value is not None:
            self.violate("placement", f"mailbox message {record.key} vanished from the "
                         f"cluster (last copy on {self.cluster.nodes[store.owner].name})")

    # -- durability -----------------------------------------------------------------

    def on_restart(self, node: SimNode, down_s: float, horizon_s: float) -> None:
        if down_s > horizon_s:
            return
        for (dataset, key), version in self.acknowledged_by.get(node.index, {}).items():
            held = node.store.get(dataset, key)
            if held is None or held.version < version:
                self.violate("durability", f"{node.name} lost acknowledged write "
                             f"{dataset}/{key} across a restart")
                return
