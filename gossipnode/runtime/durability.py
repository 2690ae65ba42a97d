"""When what a commit made may go out, and the worker threads that put commits on disk.

Rules (Invariant 4, `storage.durability`):
1. Disk syncs never run on the Trio thread. The store commits without waiting for the disk
   (storage/sqlite_store.py, `deferred_sync`); `sync_loop` makes the commits durable in a
   worker thread of its own (`SyncThread`), one fsync for all commits since the last
   (group commit), and `checkpoint_loop` copies the log into the database file in a
   worker thread of Trio's.
2. "fsync" (the default): until the sync that covers an input's commit has returned, that
   input's events are held back (in order, with everything after them), and so is the
   answer to a client write: nothing that a write made is acknowledged, to a client or to
   a peer, before it is durable. Events the caller marks as immediate (membership
   messages, which never depend on the store) go at once: a disk sync never delays a probe.
3. "periodic": a commit may be acknowledged at once (the operating system holds it, so it
   survives kill -9), and the sync runs every `fsync_interval_ms`: a power loss may take
   that much.
4. Under "fsync", a sync that no client write waits for (only peers: the acknowledgements
   of their pushes) starts at most `PEER_SYNC_INTERVAL_S` after the previous one ended, so
   that one sync covers the pushes of several writes; a client write cuts the wait short.
5. Client writes are committed between syncs, not during one (`commit_turn`, the agent's
   group commit): a write committed while a sync runs could not be acknowledged before
   the next sync anyway, so the writes that arrive during a sync (and during its
   `SYNC_GATHER_S`) wait and go as one commit just before the next sync starts
   (`commit_queued`, called by the syncer). One commit per sync means one push per peer
   per sync, where several small ones went before; no write waits for a later sync than
   it did. Under "periodic" a commit is acknowledged at once, and nothing waits.
6. With a writer thread or process (`storage.writer = "thread"` or `"process"`,
   runtime/writer_thread.py, runtime/writer_process.py) the writer commits and syncs what
   it is handed; the syncer (`WriterSync`) hands it every batch applied since its last
   run, as one (storage/pending_writes.py rule 1), and takes its answer. It runs when a
   sync would, with the wait of rule 4, so that the pushes a member takes meanwhile share
   one transaction and one sync. Rule 2 holds as it is: a batch applied counts as a
   commit, and the writer's answer as the sync that covers it.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from ..config import StorageConfig
from ..storage import SqliteStore
from ..storage.pending_writes import PendingWritesStore

__all__ = ["CHECKPOINT_INTERVAL_S", "PEER_SYNC_INTERVAL_S", "SYNC_GATHER_S", "Durability",
           "SyncThread", "WriterSync"]

# When a sync just answered several writers, the next sync waits this long first: about a
# control-socket round trip, so that the writers' next writes (sent the moment they got
# their answers) share that sync instead of waiting for the one after. A lone writer, the
# only one answered, never waits.
SYNC_GATHER_S = 0.002
# A sync that only peers wait for (their pushes' acknowledgements and what else an input
# from a peer held back; no client write is unanswered) starts at most this long after
# the last one ended: under a stream of pushes one sync then covers several of them
# instead of one each. Every sync costs a journal commit and two thread handoffs, and
# members on one disk queue behind each other's syncs: with 4 writers at one of three
# local agents, sparing the replicas' syncs this way doubled the writes acknowledged.
# A pushed record is visible at once (it is committed); only its acknowledgement waits,
# far below `PUSH_RETRY_S`. A client write arriving meanwhile starts the sync at once.
PEER_SYNC_INTERVAL_S = 0.01
# The write-ahead log is copied into the database file this often (when anything was
# committed), in a worker thread: about a second of writes at a time, a few MiB at most.
CHECKPOINT_INTERVAL_S = 1.0


class Durability:
    def __init__(self, store: SqliteStore, storage: StorageConfig,
                 carry_out: Callable[[list[Any]], None],
                 commit_queued: Callable[[], None] = lambda: None) -> None:
        """`carry_out`: what the agent does with events once they may go out;
        `commit_queued`: commits the client writes waiting for their turn (rule 5), called
        just before every sync."""
        self.store = store
        self.periodic = storage.durability == "periodic"
        self.interval_s = storage.fsync_interval_ms / 1000
        self._carry_out = carry_out
        # Held until the store's `durable` reaches their commit count: events, in order,
        # and the answers to client writes (rule 2).
        self._held: deque[tuple[int, list[Any]]] = deque()
        self._unanswered: deque[tuple[int, list[trio.Event]]] = deque()
        self._sync_wanted = trio.Event()
        # Set when a client write waits for a sync (ends a peers-only sync's wait).
        self._client_waiting = trio.Event()
        self._synced_at = -math.inf
        # Disk syncs (or writer hand-overs answered) since start: with the store's write
        # calls, how many commits one sync covers (`info`, /metrics).
        self.syncs = 0
        self._commit_queued = commit_queued
        # Set while a commit would be covered by the next sync to start: no sync runs and
        # none has just answered writers (rule 5).
        self._turn = trio.Event()
        self._turn.set()

    async def commit_turn(self) -> None:
        """Return when a client write's commit may be made (rule 5): at once when no sync
        runs, else once the running sync ended and its answered writers had
        `SYNC_GATHER_S` to write again."""
        await self._turn.wait()

    def acknowledged(self) -> int:
        """The commits that may be acknowledged: those a sync covered ("fsync"), or every
        commit ("periodic": the operating system holds them)."""
        return self.store.commits if self.periodic else self.store.durable

    def answer(self, answers: list[trio.Event]) -> None:
        """Set `answers` once the latest commit may be acknowledged: now, or after its sync."""
        if self.acknowledged() >= self.store.commits:
            for answer in answers:
                answer.set()
        else:
            self._unanswered.append((self.store.commits, answers))
            self._client_waiting.set()

    def dispatch(self, events: list[Any], immediate: Callable[[Any], bool]) -> None:
        """Carry out an input's events now, or hold them until its commit may be
        acknowledged; those `immediate` says yes to go at once (rule 2)."""
        store = self.store
        if store.durable < store.commits:
            self._sync_wanted.set()
        if self.acknowledged() >= store.commits and not self._held:
            self._carry_out(events)
            return
        held = []
        for event in events:
            if immediate(event):
                self._carry_out([event])
            else:
                held.append(event)
        if held:
            self._held.append((store.commits, held))

    async def sync_loop(self) -> None:
        """Make commits durable in a worker thread, then release what waited for them.

        One sync at a time (one writer to the disk); it covers every commit made before it
        started, so writes that arrive while a sync runs share the next one. Periodic
        durability waits `fsync_interval_ms` before each sync instead of running at once."""
        store = self.store
        syncer: SyncThread | WriterSync = (
            WriterSync(store) if isinstance(store, PendingWritesStore)
            else SyncThread(store.sync_wal))
        try:
            await self._sync_loop(syncer)
        finally:
            syncer.stop()

    async def _sync_loop(self, syncer: SyncThread | WriterSync) -> None:
        store = self.store
        while True:
            answered = 0
            while self._unanswered and self._unanswered[0][0] <= store.durable:
                for answer in self._unanswered.popleft()[1]:
                    answer.set()
                    answered += 1
            while self._held and self._held[0][0] <= store.durable:
                self._carry_out(self._held.popleft()[1])
            if answered > 1:
                await trio.sleep(SYNC_GATHER_S)
            self._turn.set()
            if store.durable >= store.commits:
                self._sync_wanted = trio.Event()
                await self._sync_wanted.wait()
                continue
            if self.periodic:
                await trio.sleep(self.interval_s)
            elif not self._unanswered:
                self._client_waiting = trio.Event()
                with trio.move_on_at(self._synced_at + PEER_SYNC_INTERVAL_S):
                    await self._client_waiting.wait()
            if not self.periodic:
                self._turn = trio.Event()
            self._commit_queued()  # the writes that waited for their turn: this sync's
            covered = await syncer.run()
            self.syncs += 1
            store.durable = max(store.durable, covered)
            self._synced_at = trio.current_time()

    async def checkpoint_loop(self) -> None:
        """Copy the write-ahead log into the database file every `CHECKPOINT_INTERVAL_S`
        (when anything was committed meanwhile), in a worker thread: the checkpoint reads
        and writes megabytes and syncs the database file, which the committing Trio thread
        would otherwise do itself whenever the log reached SQLite's threshold."""
        checkpointed = self.store.commits
        while True:
            await trio.sleep(CHECKPOINT_INTERVAL_S)
            if self.store.commits != checkpointed:
                checkpointed = self.store.commits
                await trio.to_thread.run_sync(self.store.checkpoint)


class SyncThread:
    """A worker thread of its own for the disk syncs: woken with a condition, answering
    through the Trio token. A sync runs for nearly every group commit, and this round trip
    skips what `trio.to_thread.run_sync` does per call (a thread-cache lookup, a context
    copy, a capacity limiter, cancellation plumbing): about two thirds of its CPU.
    Created and used in one Trio run; `stop()` ends it."""

    def __init__(self, sync: Callable[[], int]) -> None:
        self._sync = sync
        self._token = trio.lowlevel.current_trio_token()
        self._changed = threading.Condition()
        # The delivery of the sync asked for and not yet started; None when idle.
        self._asked: Callable[[tuple[bool, Any]], None] | None = None
        self._stopped = False
        threading.Thread(target=self._serve, name="store sync", daemon=True).start()

    async def run(self) -> int:
        """Run `sync()` in the thread and return its result, or raise its exception. Not
        cancellable once started (as `trio.to_thread.run_sync`): the store must not close
        its files under a running sync. One call at a time."""
        done = trio.Event()
        outcome: list[tuple[bool, Any]] = []

        def deliver(result: tuple[bool, Any]) -> None:  # in the loop
            outcome.append(result)
            done.set()

        with self._changed:
            assert self._asked is None, "one sync at a time"
            self._asked = deliver
            self._changed.notify()
        with trio.CancelScope(shield=True):
            await done.wait()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def _serve(self) -> None:
        while True:
            with self._changed:
                while self._asked is None and not self._stopped:
                    self._changed.wait()
                if self._stopped:
                    return
                deliver, self._asked = self._asked, None
            try:
                result: tuple[bool, Any] = (True, self._sync())
            except BaseException as error:  # delivered to the loop, raised there
                result = (False, error)
            try:
                self._token.run_sync_soon(deliver, result)
            except trio.RunFinishedError:
                return


class WriterSync:
    """Durability's syncer when a writer thread or process writes (rule 6): `run` hands
    the writer every batch applied before the call and returns once it has answered them,
    with the count covered."""

    def __init__(self, store: PendingWritesStore) -> None:
        self.store = store

    async def run(self) -> int:
        self.store.hand_over()
        wanted = self.store.commits
        while self.store.durable < wanted:
            await self.store.writer.wait_answers()
        return self.store.durable

    def stop(self) -> None:
        """Nothing to stop: the writer ends when the store closes."""
