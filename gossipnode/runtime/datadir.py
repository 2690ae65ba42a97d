"""The data directory: one agent at a time, and private files whatever the umask.

Rules:
1. `lock_data_dir` takes an exclusive `flock` on DATA_DIR/agent.lock before anything else in
   the directory is opened or written, and writes the holder's PID into it. A second agent
   on the same directory gets `DataDirBusy` naming that PID and must exit without touching
   anything; the first keeps serving. The lock dies with the process (kill -9 included), so
   a stale lock file never blocks a restart.
2. `make_private` makes the directory 0700 and every regular file in it 0600 (the store, its
   write-ahead log and shared-memory files, the identity key, the replica marker, node.toml)
   and returns one human line per fix, so the agent can say what it changed. The agent also
   sets its umask to 0077, so files SQLite creates later are private from birth.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "LOCK_FILE", "DataDirBusy", "DataDirLock",
           "lock_data_dir", "make_private"]

LOCK_FILE = "agent.lock"
DIR_MODE = 0o700
FILE_MODE = 0o600
# The PID written into the lock file is a handful of digits; read a little more.
PID_BYTES_MAX = 64


class DataDirBusy(Exception):
    """Another live agent holds the data directory. `str()` is one line naming its PID."""


class DataDirLock:
    """The held lock; `release()` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


def lock_data_dir(data_dir: Path) -> DataDirLock:
    """Take the directory's exclusive lock. Raises DataDirBusy, or OSError when the
    directory cannot be used at all (missing, not ours, read-only)."""
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise DataDirBusy(
            f"{data_dir}: another agent (PID {holder}) is running on this data directory"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    os.fchmod(fd, FILE_MODE)
    return DataDirLock(path, fd)


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, PID_BYTES_MAX, 0).decode(errors="replace").strip()
        if text.isdigit():
            return text
    return "unknown"


def make_private(data_dir: Path) -> list[str]:
    """Directory 0700, its regular files 0600 (not following symlinks). Returns what was
    fixed, one short phrase per path, e.g. "store.sqlite3 0644 -> 0600"."""
    fixed = []
    mode = stat.S_IMODE(os.stat(data_dir).st_mode)
    if mode != DIR_MODE:
        os.chmod(data_dir, DIR_MODE)
        fixed.append(f"{data_dir} {mode:04o} -> {DIR_MODE:04o}")
    with os.scandir(data_dir) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if not entry.is_file(follow_symlinks=False):
                continue  # the control socket is made 0600 when bound; symlinks left alone
            mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
            if mode != FILE_MODE:
                os.chmod(entry.path, FILE_MODE)
                fixed.append(f"{entry.name} {mode:04o} -> {FILE_MODE:04o}")
    return fixed
