"""Anti-entropy for one node: the digests of every scope it reconciles, and its sessions.

Rules:
1. Digests mirror the store. A full digest per replicated dataset (what `status` shows and
   what `all`-scope and private-key sessions use) and, for WEP mailboxes, one digest per
   peer over the mailboxes this node and that peer both own ("pair" scope). NodeCore reports
   every change (`on_applied`, `on_removed`) and every change of the scope view
   (`view_changed`, which rebuilds the pair digests when the owners may have moved).
2. A session covers exactly one shared scope (`ScopeView.shared_scope`). A peer that opens
   a session over a scope we do not share with it gets a ReconcileAbort, never a digest;
   over a scope we only receive from it ("receive": administrative records from a member
   not known to be admitted) it gets an empty digest, so that it sends and we send nothing.
3. Sessions never write; NodeCore filters and applies what they received.
4. Session ids are random 63-bit numbers chosen by the initiator; sessions are keyed by
   (peer, id), so both sides may run sessions with each other at once (pipelining).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..config import NodeConfig
from .catalog import REPLICATED_DATASETS
from .errors import RemoteProtocolError
from .merkle import Digest
from .placement import mailbox_id
from .reconcile import ReconcileSession
from .reconcile_messages import ReconcileAbort, ReconcileOpen, ReconcileTurn
from .records import Record, Version
from .scopes import WEB_MESSENGER, ScopeView
from .store import RecordStore

__all__ = ["RECONCILE_MESSAGES", "AntiEntropy"]

RECONCILE_MESSAGES = (ReconcileOpen, ReconcileTurn, ReconcileAbort)
# Start-up progress is reported this often while digests are built (a second or so of work).
DIGEST_PROGRESS_RECORDS = 100_000
# Sessions with one peer at once, in each direction: one per dataset, and as many again
# for a repair started while a round is running. Counted apart per direction, so that
# sessions we opened and that hang cannot crowd out the peer's own.
SESSIONS_PER_PEER_MAX = 2 * len(REPLICATED_DATASETS)


@dataclass(slots=True)
class _Running:
    session: ReconcileSession
    started: float
    initiated: bool
    moved: int = 0


@dataclass(slots=True)
class _PeerSync:
    synced_at: float | None = None
    last_moved: int | None = None


class AntiEntropy:
    def __init__(self, config: NodeConfig, store: RecordStore, node_id: bytes,
                 rng: random.Random) -> None:
        self.config = config
        self.store = store
        self.node_id = node_id
        self.rng = rng
        self.full: dict[str, Digest] = {}
        self.pairs: dict[bytes, Digest] = {}
        self._pair_basis: tuple[object, ...] | None = None
        self._sessions: dict[tuple[bytes, int], _Running] = {}
        self._sync: dict[bytes, _PeerSync] = {}
        self.counters: Counter[str] = Counter()
        self.session_seconds = 0.0

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

    def _digest_for(self, peer: bytes, dataset: str, view: ScopeView, *,
                    responding: bool = False) -> Digest | None:
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

    # --- sessions ------------------------------------------------------------------------------

    @staticmethod
    def accepts(message: object) -> bool:
        return isinstance(message, RECONCILE_MESSAGES)

    def start_round(self, peer: bytes, view: ScopeView, now: float,
                    datasets: Sequence[str] | None = None) -> list[object]:
        """Open one session per dataset shared with `peer`; return the opening messages."""
        messages: list[object] = []
        for dataset in datasets if datasets is not None else REPLICATED_DATASETS:
            digest = self._digest_for(peer, dataset, view)
            if digest is None or self.running(peer, initiated=True) >= SESSIONS_PER_PEER_MAX:
                continue
            session_id = self.rng.getrandbits(63)
            session = ReconcileSession.initiate(
                session_id, digest, self._fetch(dataset), self.config.reconcile,
                self.config.limits, self.rng, now,
            )
            self._sessions[(peer, session_id)] = _Running(session, now, initiated=True)
            self.counters["sessions_started"] += 1
            messages.extend(session.messages_to_send())
        return messages

    def receive(self, peer: bytes, message: object, view: ScopeView,
                now: float) -> tuple[list[object], list[Record], bool]:
        """Feed one reconciliation message: (replies, records received, a session completed).

        Raises RemoteProtocolError for a message no session of ours can take."""
        if isinstance(message, ReconcileOpen):
            return self._open(peer, message, view, now)
        assert isinstance(message, ReconcileTurn | ReconcileAbort)
        running = self._sessions.get((peer, message.session))
        if running is None:
            if isinstance(message, ReconcileAbort):
                return [], [], False
            return [ReconcileAbort(message.session, "no such session")], [], False
        running.session.receive(message, now)
        return self._collect(peer, message.session, running, now)

    @staticmethod
    def refusal(message: object, reason: str) -> ReconcileAbort | None:
        """The abort that refuses a peer's session message (None for an abort itself)."""
        if isinstance(message, ReconcileOpen | ReconcileTurn):
            return ReconcileAbort(message.session, reason)
        return None

    def _open(self, peer: bytes, opening: ReconcileOpen, view: ScopeView,
              now: float) -> tuple[list[object], list[Record], bool]:
        if opening.dataset not in self.full:
            raise RemoteProtocolError(f"reconciliation of unknown dataset {opening.dataset!r}")
        digest = self._digest_for(peer, opening.dataset, view, responding=True)
        if digest is None:
            self.counters["sessions_refused_scope"] += 1
            return [ReconcileAbort(opening.session, "scope not shared")], [], False
        if (peer, opening.session) in self._sessions or self.running(
            peer, initiated=False
        ) >= SESSIONS_PER_PEER_MAX:
            return [ReconcileAbort(opening.session, "too many sessions")], [], False
        session = ReconcileSession.respond(
            opening, digest, self._fetch(opening.dataset), self.config.reconcile,
            self.config.limits, now,
        )
        running = _Running(session, now, initiated=False)
        self._sessions[(peer, opening.session)] = running
        self.counters["sessions_answered"] += 1
        return self._collect(peer, opening.session, running, now)

    def _collect(self, peer: bytes, session_id: int, running: _Running,
                 now: float) -> tuple[list[object], list[Record], bool]:
        session = running.session
        replies: list[object] = list(session.messages_to_send())
        received = session.take_received_records()
        sent = sum(len(m.records) for m in replies if isinstance(m, ReconcileTurn))
        running.moved += len(received) + sent
        self.counters["records_received"] += len(received)
        self.counters["records_sent"] += sent
        completed = False
        if session.done or session.failed is not None:
            del self._sessions[(peer, session_id)]
            if session.failed is None:
                completed = True
                self.counters["sessions_completed"] += 1
                self.session_seconds += now - running.started
                sync = self._sync.setdefault(peer, _PeerSync())
                sync.synced_at = now
                sync.last_moved = running.moved
            else:
                self.counters["sessions_failed"] += 1
        return replies, received, completed

    def _fetch(self, dataset: str):
        store = self.store
        return lambda key: store.get(dataset, key)

    def expire(self, now: float) -> list[tuple[bytes, object]]:
        """Fail stalled sessions; return the aborts to send, as (peer, message)."""
        aborts = []
        for (peer, session_id), running in list(self._sessions.items()):
            running.session.handle_timer(now)
            if running.session.failed is not None:
                aborts.extend((peer, m) for m in running.session.messages_to_send())
                del self._sessions[(peer, session_id)]
                self.counters["sessions_failed"] += 1
        return aborts

    def abandon(self, peer: bytes, session_id: int) -> None:
        if self._sessions.pop((peer, session_id), None) is not None:
            self.counters["sessions_abandoned"] += 1

    def abandon_peer(self, peer: bytes) -> None:
        for key in [k for k in self._sessions if k[0] == peer]:
            del self._sessions[key]
            self.counters["sessions_abandoned"] += 1

    def next_deadline(self) -> float | None:
        deadlines = [r.session.next_deadline() for r in self._sessions.values()]
        return min((d for d in deadlines if d is not None), default=None)

    # --- queries -------------------------------------------------------------------------------

    def running(self, peer: bytes, *, initiated: bool | None = None) -> int:
        """Sessions with `peer` (only those we opened, or only the peer's, if asked)."""
        return sum(
            1 for (other, _), running in self._sessions.items()
            if other == peer and (initiated is None or running.initiated == initiated)
        )

    def sessions_running(self, peer: bytes) -> bool:
        return self.running(peer) > 0

    def peer_sync(self, peer: bytes) -> dict[str, object]:
        sync = self._sync.get(peer, _PeerSync())
        if self.sessions_running(peer):
            state = "repairing"
        elif sync.last_moved is None:
            state = "unknown"
        else:
            state = "converged" if sync.last_moved == 0 else "behind"
        return {"state": state, "synced_at": sync.synced_at, "last_moved": sync.last_moved}

    def totals(self) -> dict[str, float]:
        return {
            "records_received": self.counters["records_received"],
            "records_sent": self.counters["records_sent"],
            "sessions_completed": self.counters["sessions_completed"],
            "sessions_failed": self.counters["sessions_failed"],
            "session_seconds": self.session_seconds,
        }

    def statistics(self) -> dict[str, int]:
        return {f"anti_entropy_{k}": v for k, v in self.counters.items()} | {
            "anti_entropy_sessions_running": len(self._sessions)
        }
