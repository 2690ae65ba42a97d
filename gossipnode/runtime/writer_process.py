"""The store's writer process (`storage.writer = "process"`): the agent's end.

Rules:
1. `WriterProcess` starts runtime/writer_main.py as a child with one end of a Unix
   socket pair (and no other descriptor: the data directory's lock stays the agent's), sends
   each batch as one frame (a 4-byte length, then `marshal` of (number, rows): compact, and
   one C call each way) and reads the answers, each the number of the last batch committed
   and synced. The child dies with the agent (writer_main.py rule 3); the kernel's signal
   at the parent's death is tied to the thread that started the child, so the store is
   opened on the agent's main thread (runtime/daemon.py), which lives as long as the agent.
2. Answers are read on the event loop: `wait_answers` (called by `WriterSync.run`,
   runtime/durability.py, Durability's syncer in place of `SyncThread`) waits for the
   socket to be readable and takes what arrived. `drain` reads them blocking (a rare
   write, or closing, needs every batch answered first).
3. A failed write or sync, or a writer that ended, is a `StoreError` with one line: it
   stops the agent (runtime/daemon.py `AgentFailed`), and nothing the failed batch or any
   later one held is acknowledged.
"""

from __future__ import annotations

import marshal
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import trio

from ..storage import StoreError
from ..storage.pending_writes import Row

__all__ = ["WRITER_EXIT_S", "WriterProcess"]

# After the agent closed its end, the writer gets this long to close its connection and
# exit before it is killed: it has nothing left to write (every batch was answered).
WRITER_EXIT_S = 10.0
# Bytes asked of the socket per read: answers are 9 bytes, an error one line.
ANSWER_BYTES = 64 * 1024
# The package directory's parent, so that the child imports this very gossipnode.
_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])


class WriterProcess:
    def __init__(self, path: Path, confirmed: Callable[[int], None]) -> None:
        """Start the writer of the database at `path`; `confirmed(n)` gets every answer."""
        self.path = path
        self._confirmed = confirmed
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [_IMPORT_ROOT, *filter(None, [environment.get("PYTHONPATH")])])
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gossipnode.runtime.writer_main", str(path),
                 str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=environment)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self.socket = ours
        self.submitted = 0
        self.answered = 0
        self._buffer = bytearray()
        self._failure: str | None = None

    def submit(self, number: int, rows: tuple[Row, ...]) -> None:
        """Hand batch `number` over (rule 1). Blocks only while the socket's buffer is
        full, that is while the writer is that far behind: the loop then waits for the
        disk as it would have committing itself."""
        self._check()
        frame = marshal.dumps((number, rows))
        try:
            self.socket.sendall(len(frame).to_bytes(4, "big") + frame)
        except OSError as error:
            self._fail(f"the store's writer is gone ({error.strerror or error})")
        self.submitted = number

    def collect(self, *, block: bool) -> None:
        """Take the answers that arrived (waiting for one if `block`)."""
        self._check()
        try:
            chunk = self.socket.recv(ANSWER_BYTES, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError as error:
            self._fail(f"the store's writer is gone ({error.strerror or error})")
        if not chunk:
            self._fail("the store's writer ended")
        self._buffer += chunk
        last = None
        while self._buffer:
            if self._buffer[0:1] == b"K":
                if len(self._buffer) < 9:
                    break
                last = int.from_bytes(self._buffer[1:9], "big")
                del self._buffer[:9]
            else:  # b"E": the writer failed and ends (writer_main.py rule 2)
                if len(self._buffer) < 5:
                    break
                size = int.from_bytes(self._buffer[1:5], "big")
                if len(self._buffer) < 5 + size:
                    break
                self._failure = bytes(self._buffer[5:5 + size]).decode(errors="replace")
                break
        if last is not None:
            self.answered = last
            self._confirmed(last)
        self._check()

    async def wait_answers(self) -> None:
        """Return once the socket had something to read, taken (rule 2)."""
        await trio.lowlevel.wait_readable(self.socket)
        self.collect(block=False)

    def drain(self) -> None:
        while self.answered < self.submitted:
            self.collect(block=True)

    def close(self) -> None:
        """Drain (unless the writer failed), close our end, wait for the writer to exit."""
        try:
            if self._failure is None and self.process.poll() is None:
                self.drain()
        finally:
            self.socket.close()
            try:
                self.process.wait(timeout=WRITER_EXIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _check(self) -> None:
        if self._failure is not None:
            raise StoreError(self._failure)

    def _fail(self, reason: str) -> None:
        self._failure = self._failure or f"{self.path}: {reason}"
        raise StoreError(self._failure)
