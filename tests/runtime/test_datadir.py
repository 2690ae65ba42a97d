"""The data directory's lock and permissions (runtime/datadir.py), in-process: flock
locks belong to an open file description, so a second open in this process conflicts
just as a second agent would."""

import os
import stat

import pytest

from gossipnode.runtime.datadir import DataDirBusy, lock_data_dir, make_private


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_second_lock_names_the_holder_and_the_first_keeps_it(tmp_path):
    first = lock_data_dir(tmp_path)
    try:
        with pytest.raises(DataDirBusy) as caught:
            lock_data_dir(tmp_path)
        assert str(caught.value) == (
            f"{tmp_path}: another agent (PID {os.getpid()}) is running on this data directory"
        )
        assert (tmp_path / "agent.lock").read_text() == f"{os.getpid()}\n"
        assert mode(tmp_path / "agent.lock") == 0o600
    finally:
        first.release()
    lock_data_dir(tmp_path).release()  # released: the next agent gets it


def test_make_private_fixes_the_directory_and_every_file_and_says_what(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    for name, file_mode in (("store.sqlite3", 0o644), ("store.sqlite3-wal", 0o666),
                            ("identity.key", 0o600)):
        (data / name).write_bytes(b"x")
        os.chmod(data / name, file_mode)
    os.symlink("/etc/hostname", data / "link")
    fixed = make_private(data)
    assert fixed == [f"{data} 0755 -> 0700", "store.sqlite3 0644 -> 0600",
                     "store.sqlite3-wal 0666 -> 0600"]
    assert mode(data) == 0o700
    assert all(mode(data / n) == 0o600 for n in ("store.sqlite3", "store.sqlite3-wal"))
    assert make_private(data) == []  # nothing left to fix
