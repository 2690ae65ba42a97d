"""The store's writer thread (`storage.writer = "thread"`): a thread of the agent's own
that runs the store's write transactions and syncs beside the event loop.

Rules:
1. `WriterThread` is a `BatchWriter` (storage/pending_writes.py): `submit` queues batch
   `number` and returns; the thread, with a SQLite connection of its own, takes every batch
   queued, writes them in one transaction, commits and fsyncs the write-ahead log as the
   writer process does (runtime/writer_main.py `Writer`, rule 1 there: the same SQL and
   the same sync), then records the last batch's number as answered. Batches queued during
   a commit share the next one (group commit). Python's sqlite3 and `os.fsync` release the
   interpreter lock while SQLite and the disk work, so that work runs beside the loop.
2. Answers reach the loop only on the loop's thread: `wait_answers` (Durability's syncer,
   runtime/durability.py `WriterSync`) waits until the thread wakes it through the Trio
   token, then hands the last number answered to `confirmed`; `drain` waits blocking (a
   rare write, or closing, needs every batch answered first). `confirmed` never runs in
   the writer's thread: the store's pending records are the loop's alone.
3. A failed write or sync (or the thread ending on any other error, whose traceback it
   then raises to the thread's excepthook, in the agent's log) is a `StoreError` with one
   line, raised by the next `submit`, `drain` or `wait_answers`: it stops the agent
   (runtime/daemon.py `AgentFailed`). The thread writes nothing after a failure and
   answers nothing of the failed batches, so nothing they or later ones held is
   acknowledged.
4. `submit` blocks only while `QUEUED_ROWS_MAX` rows wait for the thread (the disk that far
   behind): the loop then waits for the disk as it would committing itself. `close`
   drains (unless the writer failed), ends the thread and closes its connection.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

import trio

from ..storage import StoreError
from ..storage.pending_writes import Row
from .writer_main import Writer

__all__ = ["QUEUED_ROWS_MAX", "WriterThread"]

# Rows queued at most before `submit` waits for the thread (rule 4): about 4 MiB of 1 KiB
# records, hundreds of group commits of a busy member.
QUEUED_ROWS_MAX = 4096


class WriterThread:
    def __init__(self, path: Path, confirmed: Callable[[int], None]) -> None:
        """Start the writer of the database at `path`; `confirmed(n)` gets every answer, on
        the thread that calls `drain` or `wait_answers`. Raises StoreError if the thread
        cannot open the database."""
        self.path = path
        self._confirmed = confirmed
        self._changed = threading.Condition()
        self._queue: deque[tuple[int, tuple[Row, ...]]] = deque()
        self._queued_rows = 0
        self._stopped = False
        self._failure: str | None = None
        self._done = 0  # the last batch committed and synced, by the thread
        self._token: trio.lowlevel.TrioToken | None = None
        self._woken: trio.Event | None = None
        self.submitted = 0
        self.answered = 0  # the last number handed to `confirmed`
        opened = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(opened,),
                                       name="store writer", daemon=True)
        self.thread.start()
        opened.wait()
        if self._failure is not None:
            self.thread.join()
            raise StoreError(self._failure)

    def submit(self, number: int, rows: tuple[Row, ...]) -> None:
        """Queue batch `number` (rules 1 and 4)."""
        with self._changed:
            while (self._queued_rows >= QUEUED_ROWS_MAX and self._failure is None
                   and self._queue):
                self._changed.wait()
            self._check()
            self._queue.append((number, rows))
            self._queued_rows += len(rows)
            self._changed.notify_all()
        self.submitted = number

    async def wait_answers(self) -> None:
        """Return once an answer beyond those handed to `confirmed` came (rule 2), handed."""
        woken = self._woken = trio.Event()
        with self._changed:
            self._token = trio.lowlevel.current_trio_token()
        if self._collect():
            return
        await woken.wait()
        self._collect()

    def drain(self) -> None:
        with self._changed:
            while self._done < self.submitted and self._failure is None:
                self._changed.wait()
        self._collect()

    def close(self) -> None:
        """Drain (unless the writer failed), end the thread, close its connection."""
        try:
            if self._failure is None:
                self.drain()
        finally:
            with self._changed:
                self._stopped = True
                self._changed.notify_all()
            self.thread.join()

    def _collect(self) -> bool:
        """Hand the thread's last answer to `confirmed`; whether it was new. Raises the
        failure (rule 3) after the answers before it."""
        with self._changed:
            done, failure = self._done, self._failure
        new = done > self.answered
        if new:
            self.answered = done
            self._confirmed(done)
        if failure is not None:
            raise StoreError(failure)
        return new

    def _check(self) -> None:
        if self._failure is not None:
            raise StoreError(self._failure)

    def _wake(self) -> None:  # in the loop
        if self._woken is not None:
            self._woken.set()

    def _serve(self, opened: threading.Event) -> None:
        try:
            writer = Writer(str(self.path))
        except sqlite3.Error as error:
            self._failure = f"{self.path}: the store's writer cannot open it: {error}"
            opened.set()
            return
        opened.set()
        try:
            while True:
                with self._changed:
                    while not self._queue and not self._stopped:
                        self._changed.wait()
                    if not self._queue:
                        return
                    batches = list(self._queue)
                    self._queue.clear()
                    self._queued_rows = 0
                    self._changed.notify_all()
                try:
                    writer.write(batches)
                except (sqlite3.Error, OSError) as error:
                    with self._changed:
                        self._failure = (f"{self.path}: the store's writer failed: {error}"
                                         .splitlines()[0])
                        self._changed.notify_all()
                        token = self._token
                    self._notify(token)
                    return
                with self._changed:
                    self._done = batches[-1][0]
                    self._changed.notify_all()
                    token = self._token
                self._notify(token)
        except BaseException as error:
            # A defect, not the disk: it still ends every wait with a failure (rule 3), or
            # `drain` would wait for answers that never come.
            with self._changed:
                ended = f"{self.path}: the store's writer ended: {error!r}"
                self._failure = ended.splitlines()[0]
                self._changed.notify_all()
                token = self._token
            self._notify(token)
            raise
        finally:
            writer.close()

    def _notify(self, token: trio.lowlevel.TrioToken | None) -> None:
        if token is not None:
            # The loop ended: `drain` collects.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._wake)
