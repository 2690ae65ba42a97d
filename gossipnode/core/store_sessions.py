"""Reconciliation sessions over this node's store, made for either end: a session reads
what it sends from the store when the message is built (one key, or many at once), so only
what the store holds then is ever sent, and it sends only the winning version of a key
unless the dataset's versions merge (reconcile.py rule 8)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .context import NodeContext
from .merkle import Digest
from .reconcile import ReconcileSession
from .reconcile_messages import FetchMany, ReconcileOpen
from .records import Record

__all__ = ["StoreSessions"]


class StoreSessions:
    def __init__(self, ctx: NodeContext, merging: Iterable[str]) -> None:
        """`merging`: the datasets whose versions merge (their sessions send what the store
        holds when the message is built, replaced or not)."""
        self._store = ctx.store
        self._config = ctx.config
        self._rng = ctx.rng
        self._merging = frozenset(merging)

    def initiate(self, session_id: int, digest: Digest, now: float) -> ReconcileSession:
        """A session this node opens over `digest`."""
        dataset = digest.dataset
        return ReconcileSession.initiate(
            session_id, digest, self._fetch(dataset), self._config.reconcile,
            self._config.limits, self._rng, now, skip_replaced=dataset not in self._merging,
            fetch_many=self._fetch_many(dataset),
        )

    def respond(self, opening: ReconcileOpen, digest: Digest, now: float) -> ReconcileSession:
        """The session that answers a peer's `opening` over `digest`."""
        return ReconcileSession.respond(
            opening, digest, self._fetch(opening.dataset), self._config.reconcile,
            self._config.limits, now, skip_replaced=opening.dataset not in self._merging,
            fetch_many=self._fetch_many(opening.dataset),
        )

    def _fetch(self, dataset: str) -> Callable[[str], Record | None]:
        store = self._store
        return lambda key: store.get(dataset, key)

    def _fetch_many(self, dataset: str) -> FetchMany:
        store = self._store
        return lambda keys: {key: record for (_, key), record
                             in store.get_many((dataset, key) for key in keys).items()}
