"""SqliteStore survives kill -9 and concurrent writers."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from gossipnode.core.catalog import LOCAL_DATASETS, REPLICATED_DATASETS
from gossipnode.core.records import Record, Version
from gossipnode.storage import SqliteStore, StoreError

ORIGIN = b"\x07" * 32

WRITER = textwrap.dedent(
    """
    import sys
    from gossipnode.storage import SqliteStore
    from gossipnode.core.records import Record, Version
    store = SqliteStore(sys.argv[1])
    first = int(sys.argv[2])
    for i in range(first, first + int(sys.argv[3])):
        store.apply([Record("groups", f"k{i:06d}", b"\\xa0", Version(i + 1, 0, b"\\x07" * 32))])
        print(i, flush=True)   # the acknowledgement: printed only after apply returned
    import time
    time.sleep(60)             # wait to be killed
    """
)


def run_writer(path, first, count):
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(first), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )


def stop(writer):
    """Kill a writer we started (by its PID) and reap it."""
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    writer.stdout.close()


def test_acknowledged_writes_survive_sigkill(tmp_path):
    path = tmp_path / "store.sqlite3"
    writer = run_writer(path, 0, 200)
    acknowledged = []
    try:
        for line in writer.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) == 200:
                break
    finally:
        stop(writer)
    store = SqliteStore(path)
    for i in acknowledged:
        assert store.get("groups", f"k{i:06d}") is not None, i
    assert store.count("groups") == 200
    store.close()


def test_killed_mid_burst_leaves_a_store_that_opens(tmp_path):
    path = tmp_path / "store.sqlite3"
    writer = run_writer(path, 0, 100_000)
    acknowledged = []
    try:
        for line in writer.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) == 300:
                break  # killed below, in the middle of further writes
    finally:
        stop(writer)
    store = SqliteStore(path)
    assert store.count("groups") >= len(acknowledged)
    assert all(store.get("groups", f"k{i:06d}") for i in acknowledged)
    store.close()


def test_concurrent_writers_do_not_corrupt(tmp_path):
    path = tmp_path / "store.sqlite3"
    SqliteStore(path).close()
    writers = [run_writer(path, first, 150) for first in (0, 1000, 2000)]
    try:
        for writer in writers:
            for count, _line in enumerate(writer.stdout, start=1):
                if count == 150:
                    break
    finally:
        for writer in writers:
            stop(writer)
    store = SqliteStore(path)
    (check,) = store._db.execute("PRAGMA integrity_check").fetchone()
    assert check == "ok"
    assert store.count("groups") == 450
    store.close()


def test_local_datasets_never_appear_in_replication_queries(tmp_path):
    store = SqliteStore(tmp_path / "store.sqlite3")
    version = Version(1, 0, ORIGIN)
    every = LOCAL_DATASETS + REPLICATED_DATASETS
    store.apply(Record(name, "k", b"\xa0", version) for name in every)
    replicated = [r for name in REPLICATED_DATASETS for r in store.replicated(name)]
    assert {r.dataset for r in replicated} == set(REPLICATED_DATASETS)
    for name in LOCAL_DATASETS:
        assert store.scan(name)  # they are stored, readable locally...
    store.clear_replicated()  # ...and survive a reseed
    assert all(store.count(name) == 1 for name in LOCAL_DATASETS)
    assert all(store.count(name) == 0 for name in REPLICATED_DATASETS)
    store.close()


def test_unopenable_store_is_a_clear_error(tmp_path):
    path = tmp_path / "store.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        SqliteStore(path)


DEFERRED_WRITER = textwrap.dedent(
    """
    import sys
    from gossipnode.storage import SqliteStore
    from gossipnode.core.records import Record, Version
    store = SqliteStore(sys.argv[1], deferred_sync=True)
    for i in range(int(sys.argv[2])):
        store.apply([Record("groups", f"k{i:06d}", b"\\xa0", Version(i + 1, 0, b"\\x07" * 32))])
        if i % 10 == 9:  # a group of ten commits, then one sync for all of them
            assert store.sync_wal() == store.commits
            print(i, flush=True)
    import time
    time.sleep(60)             # wait to be killed
    """
)


def test_deferred_sync_writes_covered_by_a_sync_survive_sigkill(tmp_path):
    path = tmp_path / "store.sqlite3"
    writer = subprocess.Popen([sys.executable, "-c", DEFERRED_WRITER, str(path), "200"],
                              stdout=subprocess.PIPE, text=True)
    synced = []
    try:
        for line in writer.stdout:
            synced.append(int(line))
            if len(synced) == 20:
                break
    finally:
        stop(writer)
    store = SqliteStore(path)
    assert all(store.get("groups", f"k{i:06d}") for i in range(synced[-1] + 1))
    store.close()


def test_deferred_sync_counts_commits_and_what_a_sync_covered(tmp_path):
    store = SqliteStore(tmp_path / "store.sqlite3", deferred_sync=True)
    start = store.commits
    store.apply([Record("groups", "a", b"\xa0", Version(1, 0, ORIGIN))])
    store.apply([Record("groups", "b", b"\xa0", Version(1, 0, ORIGIN))])
    assert store.commits == start + 2
    assert store.durable < store.commits  # nothing synced yet
    assert store.sync_wal() == store.commits
    full = SqliteStore(tmp_path / "other.sqlite3")
    full.apply([Record("groups", "a", b"\xa0", Version(1, 0, ORIGIN))])
    assert full.durable == full.commits  # FULL: durable at every commit
    full.close()
    store.close()


def test_counts_follow_every_kind_of_write_and_match_a_fresh_open(tmp_path):
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    version, later = Version(1, 0, ORIGIN), Version(2, 0, ORIGIN)
    store.apply([Record("groups", k, b"\xa0", version) for k in "abcde"])
    store.apply([Record("groups", "a", None, later), Record("groups", "b", None, later)])
    store.remove("groups", ["a", "c", "missing"])
    store.collect_tombstones(10)
    store.apply([Record("network", "n", b"\xa0", version)])
    expected = {("groups", False): 2, ("groups", True): 2, ("network", False): 1}
    for (name, tombstones), n in expected.items():
        assert store.count(name, tombstones=tombstones) == n
    store.close()
    reopened = SqliteStore(path)
    for (name, tombstones), n in expected.items():
        assert reopened.count(name, tombstones=tombstones) == n
    (live,) = reopened._db.execute(
        "SELECT count(*) FROM records WHERE dataset = 'groups' AND value IS NOT NULL"
    ).fetchone()
    assert live == 2
    reopened.clear_replicated()
    assert reopened.count("groups", tombstones=True) == 0
    assert reopened.count("network") == 1
    reopened.close()


def test_a_checkpoint_from_another_thread_puts_the_commits_into_the_database_file(tmp_path):
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path, deferred_sync=True)
    store.apply([Record("groups", f"k{i}", b"\xa0", Version(i + 1, 0, ORIGIN))
                 for i in range(50)])
    worker = threading.Thread(target=store.checkpoint)
    worker.start()
    worker.join(timeout=30)
    store.apply([Record("groups", "after", b"\xa0", Version(99, 0, ORIGIN))])  # goes on
    copy = tmp_path / "copy.sqlite3"  # the database file alone, without its log
    shutil.copyfile(path, copy)
    alone = sqlite3.connect(copy)
    (count,) = alone.execute("SELECT count(*) FROM records WHERE dataset = 'groups'").fetchone()
    alone.close()
    assert count == 50
    store.close()


def test_a_batch_that_changes_nothing_commits_nothing(tmp_path):
    """No transaction for a batch that loses everywhere: nothing for a sync to cover."""
    store = SqliteStore(tmp_path / "store.sqlite3", deferred_sync=True)
    store.apply([Record("groups", "a", b"\xa1", Version(5, 0, ORIGIN))])
    commits = store.commits
    assert store.apply([Record("groups", "a", b"\xa0", Version(4, 0, ORIGIN))]) == []
    assert store.commits == commits
    store.close()


@pytest.mark.parametrize("size", [3, 300])  # one INSERT alone, and several in a transaction
def test_a_write_that_fails_leaves_nothing_of_its_batch(tmp_path, size):
    """SQLite refusing one row of a batch (here a trigger, as a full disk would) refuses
    the whole batch: no record of it stored, no commit counted, the counts unmoved; a
    later batch is written as usual."""
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path, deferred_sync=True)
    store.apply([Record("groups", "k0000", b"\xa1", Version(1, 0, ORIGIN))])
    other = sqlite3.connect(path)
    other.execute("CREATE TRIGGER refuse BEFORE INSERT ON records WHEN NEW.key = 'boom'"
                  " BEGIN SELECT RAISE(ABORT, 'refused'); END")
    other.commit()
    commits = store.commits
    batch = [Record("groups", f"k{i:04d}", b"\xa0", Version(2, 0, ORIGIN)) for i in range(size)]
    batch.insert(size // 2, Record("groups", "boom", b"\xa0", Version(2, 0, ORIGIN)))
    with pytest.raises(sqlite3.Error, match="refused"):
        store.apply(batch)
    assert store.commits == commits
    assert store.count("groups") == 1
    assert store.get("groups", "k0000").value == b"\xa1"
    assert store.scan("groups") == [store.get("groups", "k0000")]
    other.execute("DROP TRIGGER refuse")
    other.commit()
    other.close()
    assert len(store.apply(batch)) == size + 1
    assert store.sync_wal() == store.commits == commits + 1
    store.close()
    reopened = SqliteStore(path)
    assert reopened.count("groups") == size + 1
    reopened.close()


def test_a_key_twice_in_one_statement_ends_as_written_one_by_one(tmp_path):
    store = SqliteStore(tmp_path / "store.sqlite3")
    batch = [Record("groups", "a", b"\xa0", Version(1, 0, ORIGIN)),
             Record("groups", "b", b"\xa0", Version(1, 0, ORIGIN)),
             Record("groups", "a", b"\xa2", Version(3, 0, ORIGIN)),
             Record("groups", "a", b"\xa1", Version(2, 0, ORIGIN))]  # loses to the one before
    assert [r.value for r in store.apply(batch)] == [b"\xa0", b"\xa0", b"\xa2"]
    assert store.get("groups", "a").value == b"\xa2"
    assert store.count("groups") == 2
    store.close()
