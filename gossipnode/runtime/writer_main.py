"""The store's writer process (`storage.writer = "process"`): run by the agent as
`python -m gossipnode.runtime.writer_main DATABASE FD AGENT_PID`, never by hand.

Rules:
1. It owns the store's writes: it reads batches from the socket FD (each a 4-byte
   big-endian length and a `marshal`led `(number, rows)`, rows in the store's column order,
   no rows: only a sync), INSERTs every batch that has arrived in one transaction, COMMITs,
   fsyncs the write-ahead log, and answers `K` and the last batch's number (8 bytes): every
   batch up to it is on disk. Batches are taken as they come: those that arrive during a
   commit share the next one (group commit).
2. A failed write or sync is answered `E`, a 4-byte length and one line, and the process
   ends: it writes nothing after a failure, so nothing after it is acknowledged.
3. It dies with the agent: end of file on the socket (the agent closed it or died) ends it,
   and on Linux the kernel kills it with SIGKILL the moment the agent dies
   (PR_SET_PDEATHSIG), so no writer outlives its agent holding the database. It inherits
   no descriptor but the socket: the data directory's lock stays the agent's alone.
   SIGINT and SIGTERM sent to the agent's process group are ignored here: the agent
   leaves, drains its writes, and closes the socket.
4. It imports nothing of gossipnode (the agent's read connection and this one must agree on
   the schema: tests/runtime/test_writer_process.py writes through it and reads back).
"""

from __future__ import annotations

import ctypes
import marshal
import os
import signal
import socket
import sqlite3
import sys

# As the agent's store (storage/): a writer waits this long for another writer's lock.
BUSY_TIMEOUT_S = 10.0
# As the agent's store: SQLite checkpoints by itself only past this many log pages; the
# agent's checkpoint thread keeps the log far smaller.
BACKSTOP_CHECKPOINT_PAGES = 16_384
# Bytes asked of the socket per read: a batch of 64 records of 1 KiB is about 70 KiB.
RECEIVE_BYTES = 1 << 20
# One multi-row statement holds at most this many rows (7 parameters each, under SQLite's
# old limit of 999), as the agent's store does.
ROWS_PER_STATEMENT = 64
COLUMNS = ("dataset", "key", "wall_ms", "counter", "origin", "value", "signature")
PR_SET_PDEATHSIG = 1


def _insert_sql(rows: int) -> str:
    one = f"({','.join('?' * len(COLUMNS))})"
    return (f"INSERT OR REPLACE INTO records ({', '.join(COLUMNS)}) VALUES "
            + ",".join([one] * rows))


def die_with(agent_pid: int) -> None:
    """Rule 3: SIGKILL when the agent dies (Linux); gone already: exit now."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: end of file on the socket still ends us
        pass
    if os.getppid() != agent_pid:
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Writer:
    def __init__(self, path: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # the sync is ours, after COMMIT
        self.db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")
        self.db.execute("PRAGMA secure_delete=ON")
        self._wal_fd: int | None = None
        self._sql: dict[int, str] = {}

    def write(self, batches: list[tuple[int, tuple]]) -> None:
        """Every row of `batches` in one transaction, then one sync of the log."""
        rows = [row for _, batch in batches for row in batch]
        if len(batches) == 1 and 0 < len(rows) <= ROWS_PER_STATEMENT:
            # One statement is its own transaction (as the agent's store writes a batch).
            sql = self._sql.get(len(rows)) or self._sql.setdefault(len(rows),
                                                                   _insert_sql(len(rows)))
            self.db.execute(sql, [value for row in rows for value in row])
        elif rows:  # row by row: a multi-row statement in a transaction needs a journal
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(_insert_sql(1), rows)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        os.fsync(self._wal())

    def close(self) -> None:
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        self.db.close()

    def _wal(self) -> int:
        if self._wal_fd is None:
            self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY)
            directory = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
            try:  # once: the log's directory entry, so the log is found after a crash
                os.fsync(directory)
            finally:
                os.close(directory)
        return self._wal_fd


def take_frames(buffer: bytearray) -> list[tuple[int, tuple]]:
    """The whole frames at the start of `buffer`, removed from it."""
    batches = []
    start = 0
    while len(buffer) - start >= 4:
        size = int.from_bytes(buffer[start:start + 4], "big")
        if len(buffer) - start - 4 < size:
            break
        batches.append(marshal.loads(bytes(buffer[start + 4:start + 4 + size])))
        start += 4 + size
    del buffer[:start]
    return batches


def serve(channel: socket.socket, writer: Writer) -> int:
    buffer = bytearray()
    while True:
        chunk = channel.recv(RECEIVE_BYTES)
        if not chunk:
            return 0  # rule 3: the agent closed its end, or died
        buffer += chunk
        while True:  # whatever else arrived meanwhile joins this commit (rule 1)
            try:
                more = channel.recv(RECEIVE_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not more:
                break
            buffer += more
        batches = take_frames(buffer)
        if not batches:
            continue
        try:
            writer.write(batches)
        except (sqlite3.Error, OSError) as error:
            line = (f"{writer.path}: the store's writer failed: {error}".splitlines()[0]
                    .encode(errors="replace"))
            channel.sendall(b"E" + len(line).to_bytes(4, "big") + line)
            return 1
        channel.sendall(b"K" + batches[-1][0].to_bytes(8, "big"))


def main(argv: list[str]) -> int:
    path, fd, agent_pid = argv[1], int(argv[2]), int(argv[3])
    die_with(agent_pid)
    channel = socket.socket(fileno=fd)
    try:
        writer = Writer(path)
    except sqlite3.Error as error:
        line = f"{path}: the store's writer cannot open it: {error}".encode(errors="replace")
        channel.sendall(b"E" + len(line).to_bytes(4, "big") + line)
        return 1
    return serve(channel, writer)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
