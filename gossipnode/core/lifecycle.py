"""The life of one replica: its generation, when it last synced, quarantine, reseed, and the
collection of old tombstones.

Rules:
1. Tombstone horizon (Invariant 5): tombstones older than `tombstone_grace_s` are
   collected. A node whose last completed reconciliation is older than that may have missed
   a delete whose tombstone is gone everywhere else; while it has peers (or seeds) it is
   quarantined: it exchanges no data and takes no replicated writes until `reseed`.
2. `reseed` discards the replicated data (never node-local data, never the identity) and
   starts a new generation (advertised in the `generation` tag from the next start, and in
   status), so that operators can tell the fresh replica from the old one.
3. Generation and last-sync time are kept in the store's metadata, so they survive a restart.
4. Ages that other nodes must agree on (the tombstone horizon, the last-sync time it is
   compared with) are wall-clock milliseconds (`NodeContext.wall_ms`); the collection
   timer runs on the monotonic `now` like every deadline.
5. The first completed reconciliation of the current generation is kept too
   (`first_synced_ms`, in the store's metadata; none after a reseed, which marks the
   replica synced for rule 1 without having synced anything): core/replays.py asks whether
   this replica has been in step since before the tombstone horizon (`horizon_ms`, the
   one the collection uses).
"""

from __future__ import annotations

from collections.abc import Sequence

from .context import NodeContext
from .events import Address
from .records import Record
from .store import RecordStore

__all__ = [
    "META_FIRST_SYNCED_MS",
    "META_GENERATION",
    "META_SYNCED_MS",
    "TIMER_GC",
    "Lifecycle",
    "stored_generation",
]

META_SYNCED_MS = "synced_ms"
META_FIRST_SYNCED_MS = "first_synced_ms"  # empty: no completed sync in this generation
META_GENERATION = "generation"
# Tombstones are collected this often (or every tenth of the grace period, if shorter);
# collection is cheap, but there is no hurry either.
TOMBSTONE_GC_INTERVAL_S = 3600.0
TIMER_GC = "tombstone_gc"


def stored_generation(store: RecordStore) -> int:
    return int.from_bytes(store.get_meta(META_GENERATION) or b"\x01", "big")


class Lifecycle:
    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        store = ctx.store
        self.generation = stored_generation(store)
        synced = store.get_meta(META_SYNCED_MS)
        if synced is None:
            synced = ctx.wall_ms().to_bytes(8, "big")
            store.set_meta(META_SYNCED_MS, synced)
        self.synced_ms = int.from_bytes(synced, "big")
        first = store.get_meta(META_FIRST_SYNCED_MS)
        self.first_synced_ms = int.from_bytes(first, "big") if first else None
        self.seeds: tuple[Address, ...] = ()
        self._grace_s = ctx.config.replication.tombstone_grace_s
        self._gc_interval_s = min(TOMBSTONE_GC_INTERVAL_S, self._grace_s / 10)

    def start(self, now: float) -> None:
        self._ctx.timers.set(TIMER_GC, now + self._gc_interval_s)

    def joined(self, seeds: Sequence[Address]) -> None:
        self.seeds = tuple(seeds)

    def quarantined(self) -> bool:
        return self.synced_age_ms() > self._grace_s * 1000 and bool(
            self.seeds or self._ctx.view.peers()
        )

    def synced_age_ms(self) -> int:
        """Wall milliseconds since the last completed sync (0 if the clock stepped back)."""
        return max(0, self._ctx.wall_ms() - self.synced_ms)

    def synced(self) -> None:
        """A reconciliation completed: this replica is current as of the wall clock now."""
        self._mark_synced()
        if self.first_synced_ms is None:  # rule 5
            self.first_synced_ms = self.synced_ms
            self._ctx.store.set_meta(META_FIRST_SYNCED_MS, self.synced_ms.to_bytes(8, "big"))

    def _mark_synced(self) -> None:
        self.synced_ms = max(self.synced_ms, self._ctx.wall_ms())
        self._ctx.store.set_meta(META_SYNCED_MS, self.synced_ms.to_bytes(8, "big"))

    def reseed(self) -> int:
        """Discard the replicated data and start a new generation; returns records removed."""
        removed = self._ctx.store.clear_replicated()
        self.generation += 1
        self._ctx.store.set_meta(META_GENERATION, self.generation.to_bytes(8, "big"))
        self.first_synced_ms = None  # rule 5: nothing synced in this generation yet
        self._ctx.store.set_meta(META_FIRST_SYNCED_MS, b"")
        self._mark_synced()  # rule 1: not quarantined while it fills
        self._ctx.counters["reseeds"] += 1
        return removed

    def horizon_ms(self) -> int:
        """The tombstone horizon (rule 1): wall milliseconds now less the grace period."""
        return self._ctx.wall_ms() - int(self._grace_s * 1000)

    def collect_tombstones(self, now: float) -> list[Record]:
        """Collect tombstones past the horizon (rule 1); re-arms its timer."""
        self._ctx.timers.set(TIMER_GC, now + self._gc_interval_s)
        collected = self._ctx.store.collect_tombstones(self.horizon_ms())
        self._ctx.counters["tombstones_collected"] += len(collected)
        return collected
