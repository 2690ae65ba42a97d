"""The digests of one node: what its anti-entropy sessions compare.

Rules:
1. Digests mirror the store. A full digest per replicated dataset (what `status` shows and
   what `all`-scope and private-key sessions use) and, for WEP mailboxes, one digest per
   peer over the mailboxes this node and that peer both own ("pair" scope). NodeCore reports
   every change (`on_applied`, `on_removed`) and every change of the scope view
   (`view_changed`, which rebuilds the pair digests when the owners may have moved).
2. A session covers exactly one shared scope (`ScopeView.shared_scope`): a digest never
   covers data the peer may not hold. Over a scope this node only receives from the peer
   ("receive": administrative records from a member not known to be admitted) it answers
   with an empty digest, so that the peer sends and this node sends nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from .catalog import REPLICATED_DATASETS
from .merkle import Digest
from .placement import mailbox_id
from .records import Record, Version
from .scopes import WEB_MESSENGER, ScopeView
from .store import RecordStore

__all__ = ["DIGEST_PROGRESS_RECORDS", "Digests"]

# Start-up progress is reported this often while digests are built (a second or so of work).
DIGEST_PROGRESS_RECORDS = 100_000


class Digests:
    def __init__(self, store: RecordStore, node_id: bytes, counters: Counter[str]) -> None:
        self.store = store
        self.node_id = node_id
        self.counters = counters
        self.full: dict[str, Digest] = {}
        self.pairs: dict[bytes, Digest] = {}
        self._pair_basis: tuple[object, ...] | None = None
        # Bumped by every change to the full digests, so that a reader can tell cheaply
        # whether a root may have moved (core/cluster_view.py).
        self.changes = 0

    # --- digests -------------------------------------------------------------------------------

    def build(self, view: ScopeView,
              progress: Callable[[str, int], None] | None = None) -> Version | None:
        """Build every digest from the store; return the newest version seen (for the HLC).
        `progress(dataset, records so far)` is called every DIGEST_PROGRESS_RECORDS."""
        newest: Version | None = None

        def tracked(records: Iterable[Record]) -> Iterable[Record]:
            nonlocal newest
            for record in records:
                if newest is None or record.version > newest:
                    newest = record.version
                yield record

        self.full = {}
        self.changes += 1
        for name in REPLICATED_DATASETS:
            report = None if progress is None else (
                lambda done, name=name: progress(name, done)
            )
            self.full[name] = Digest.build(
                name, tracked(self.store.replicated(name)), report, DIGEST_PROGRESS_RECORDS
            )
        self._pair_basis = None
        self.view_changed(view)
        return newest

    def view_changed(self, view: ScopeView) -> bool:
        """Rebuild the pair digests when the WEP owners changed; say whether they did."""
        basis = view.placement_basis()
        if basis == self._pair_basis:
            return False
        self._pair_basis = basis
        grouped: dict[bytes, list[Record]] = {}
        if view.policy.wep_replication:
            for record in self.store.replicated(WEB_MESSENGER):
                for peer in self._pair_peers(view, record.key):
                    grouped.setdefault(peer, []).append(record)
        self.pairs = {peer: Digest.build(WEB_MESSENGER, records)
                      for peer, records in grouped.items()}
        self.counters["pair_digest_rebuilds"] += 1
        return True

    def _pair_peers(self, view: ScopeView, key: str) -> list[bytes]:
        owners = view.owners(mailbox_id(key)) or ()
        if self.node_id not in owners:
            return []
        return [owner for owner in owners if owner != self.node_id]

    def on_applied(self, changes: Sequence[tuple[Record | None, Record]],
                   view: ScopeView) -> None:
        self.changes += 1
        for previous, record in changes:
            digest = self.full.get(record.dataset)
            if digest is None:
                continue  # node-local: never digested
            digest.replace(previous, record)
            if record.dataset == WEB_MESSENGER and view.policy.wep_replication:
                for peer in self._pair_peers(view, record.key):
                    pair = self.pairs.setdefault(peer, Digest(WEB_MESSENGER))
                    if previous is not None and pair.contains(previous):
                        pair.remove(previous)
                    pair.insert(record)

    def on_removed(self, records: Iterable[Record]) -> None:
        self.changes += 1
        for record in records:
            digest = self.full.get(record.dataset)
            if digest is None:
                continue
            if digest.contains(record):
                digest.remove(record)
            if record.dataset == WEB_MESSENGER:
                for pair in self.pairs.values():
                    if pair.contains(record):
                        pair.remove(record)

    def pair_partners(self) -> list[bytes]:
        """Peers with whom this node shares at least one mailbox record, in a stable order."""
        return sorted(peer for peer, digest in self.pairs.items() if digest.count)

    def root_hex(self, dataset: str) -> str | None:
        digest = self.full.get(dataset)
        return None if digest is None else digest.root.hex()

    def covers(self, dataset: str) -> bool:
        return dataset in self.full

    def digest_for(self, peer: bytes, dataset: str, view: ScopeView, *,
                   responding: bool = False) -> Digest | None:
        """The digest a session with `peer` over `dataset` uses (rule 2), or None when the
        two do not share that dataset."""
        scope = view.shared_scope(peer, dataset)
        if scope == "receive":
            # Answer with an empty digest: the peer sends what it has, we send nothing
            # (scopes.py rule 3, how a member learns grants it does not know yet).
            return Digest(dataset) if responding else None
        if scope == "all":
            return self.full[dataset]
        if scope == "pair":
            return self.pairs.setdefault(peer, Digest(WEB_MESSENGER))
        return None
