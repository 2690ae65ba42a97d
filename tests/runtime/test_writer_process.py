"""The store's writer thread and writer process (`storage.writer = "thread"`, `"process"`):
what they are handed is on disk when they answer, and not answered while it cannot be
written; reads see what is pending; a failed write is one line, stops the agent and
acknowledges nothing; a process writer that dies stops the agent, and it dies with its agent
(kill -9 included) without ever holding the data directory's lock; kill -9 of an agent
loses no acknowledged write with either."""

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trio

from gossipnode.config import NodeConfig, StorageConfig
from gossipnode.config_rules import check_config
from gossipnode.core.records import Record, Version
from gossipnode.identity import create_identity, generate_secret, load_identity
from gossipnode.runtime.agent import Agent
from gossipnode.runtime.store_choice import open_store
from gossipnode.runtime.writer_process import WriterProcess
from gossipnode.runtime.writer_thread import WriterThread
from gossipnode.storage import SqliteStore, StoreError
from gossipnode.storage.pending_writes import PendingWritesStore
from gossipnode.wire.cbor import encode_value
from tests.exception_leaves import exception_leaves

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from local_cluster import LocalCluster

# Every wait below is bounded by this: generous for a loaded 2-core machine.
WAIT_S = 30.0
POLL_S = 0.05
ORIGIN = b"\x07" * 32
WRITERS = pytest.mark.parametrize("writer", [WriterThread, WriterProcess],
                                   ids=["thread", "process"])


def _record(i: int, value: bytes | None = b"\xa0", wall_ms: int = 1) -> Record:
    return Record("groups", f"k{i:04d}", value, Version(wall_ms, 0, ORIGIN))


def _alive(pid: int) -> bool:
    """Running (a zombie, dead and not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    return [int(child) for children in Path(f"/proc/{pid}/task").glob("*/children")
            for child in children.read_text().split()]


def _bounded(call) -> None:
    """`call()` in a thread of its own, waited for at most WAIT_S (a broken writer's drain
    may never return); its exception raised here."""
    raised = []

    def run():
        try:
            call()
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT_S)
    assert not thread.is_alive(), f"{call} did not return within {WAIT_S} s"
    if raised:
        raise raised[0]


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {WAIT_S} s"
        time.sleep(POLL_S)


def _ended(writer) -> int | None:
    """The writer's exit status (a process), or 0 once the thread ended."""
    if isinstance(writer, WriterProcess):
        return writer.process.returncode
    return None if writer.thread.is_alive() else 0


@WRITERS
def test_what_the_writer_answers_is_in_the_database_and_reads_see_it_before(tmp_path,
                                                                            writer):
    store = PendingWritesStore(tmp_path / "store.sqlite3", writer)
    try:
        for start in range(0, 300, 30):  # batches of 30, one multi-row statement each
            store.apply([_record(i) for i in range(start, start + 30)])
        store.apply([_record(i, None, 2) for i in range(100)])  # a batch of 100 tombstones
        assert store.count("groups") == 200  # at once, answered or not
        assert store.get("groups", "k0000").value is None
        store.drain()
        assert store.durable == store.commits == 11
        assert store.pending_records == 0
        # Another connection (no gossipnode code) finds every row the writer answered for.
        with sqlite3.connect(tmp_path / "store.sqlite3") as other:
            live, dead = other.execute(
                "SELECT count(value), sum(value IS NULL) FROM records").fetchone()
        assert (live, dead) == (200, 100)
    finally:
        store.close()
    assert _ended(store.writer) == 0  # ended by the end of its socket, or by `close`
    reopened = SqliteStore(tmp_path / "store.sqlite3")
    assert reopened.count("groups") == 200 and reopened.count("groups", tombstones=True) == 300
    reopened.close()


# The thread re-raises the defect after failing the waits, so that its traceback reaches the
# agent's log (threading's excepthook); pytest reports that as a warning of its own.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_writer_thread_ended_by_a_defect_fails_the_waits_instead_of_hanging(tmp_path,
                                                                              monkeypatch):
    """Not the disk: any error that ends the thread still ends `drain` with a StoreError
    (writer_thread.py rule 3), and nothing of its batch is answered."""
    def broken(self, batches):
        raise RuntimeError("a defect in the writer")

    SqliteStore(tmp_path / "store.sqlite3").close()
    answers = []
    writer = WriterThread(tmp_path / "store.sqlite3", answers.append)
    monkeypatch.setattr("gossipnode.runtime.writer_main.Writer.write", broken)
    writer.submit(1, (("groups", "a", 1, 0, ORIGIN, b"\xa0", None),))
    with pytest.raises(StoreError) as caught:
        _bounded(writer.drain)
    assert "a defect in the writer" in str(caught.value) and "\n" not in str(caught.value)
    assert answers == []
    _bounded(writer.close)
    assert not writer.thread.is_alive()


@WRITERS
def test_a_failed_write_is_one_line_and_nothing_after_it_is_answered(tmp_path, writer):
    answers = []
    writer = writer(tmp_path / "store.sqlite3", answers.append)
    SqliteStore(tmp_path / "store.sqlite3").close()  # the schema, as the agent's store makes
    writer.submit(1, (("groups", "a", 1, 0, ORIGIN, b"\xa0", None),))
    writer.drain()
    writer.submit(2, ((None, "b", 1, 0, ORIGIN, b"\xa0", None),))  # NOT NULL: refused
    writer.submit(3, (("groups", "c", 1, 0, ORIGIN, b"\xa0", None),))
    with pytest.raises(StoreError) as caught:
        _bounded(writer.drain)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "store.sqlite3") in message
    assert "NOT NULL" in message
    assert answers == [1]
    with pytest.raises(StoreError):  # and it stays failed
        writer.submit(4, ())
    _bounded(writer.close)
    if isinstance(writer, WriterProcess):
        assert writer.process.returncode == 1
    assert _ended(writer) is not None
    reopened = SqliteStore(tmp_path / "store.sqlite3")
    assert reopened.get("groups", "a") is not None and reopened.get("groups", "c") is None
    reopened.close()


def test_the_writers_need_fsync_durability_and_the_thread_writes_by_default():
    assert NodeConfig().storage.writer_in_use == "thread"
    # Periodic durability acknowledges a commit at once: the loop commits, unless asked.
    periodic = StorageConfig(durability="periodic")
    assert periodic.writer_in_use == "loop" and check_config(NodeConfig(storage=periodic)) is None
    for name in ("loop", "thread", "process"):
        assert StorageConfig(writer=name).writer_in_use == name
    for name in ("thread", "process"):
        periodic = NodeConfig(storage=StorageConfig(durability="periodic", writer=name))
        assert check_config(periodic) == ("storage.writer",
                                          f'"{name}" needs storage.durability = "fsync"')
        assert check_config(NodeConfig(storage=StorageConfig(writer=name))) is None
    assert check_config(NodeConfig(storage=StorageConfig(writer="threads")))[0] == \
        "storage.writer"


@WRITERS
async def test_nothing_is_answered_before_it_is_committed_and_reads_see_it_meanwhile(
        tmp_path, writer):
    path = tmp_path / "store.sqlite3"
    store = PendingWritesStore(path, writer)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the write lock: the writer's commit waits
        store.apply([_record(i) for i in range(5)])
        store.hand_over()
        with trio.move_on_after(1.0):  # no answer while the batch cannot be committed
            while True:
                await store.writer.wait_answers()
        assert (store.commits, store.durable, store.pending_records) == (1, 0, 5)
        assert store.get("groups", "k0003") == _record(3)  # reads see the pending batch
        assert [r.key for r in store.scan("groups")] == [f"k{i:04d}" for i in range(5)]
        assert store.count("groups") == 5
        assert other.execute("SELECT count(*) FROM records").fetchone() == (0,)
        other.execute("ROLLBACK")
        with trio.fail_after(WAIT_S):
            while store.durable < 1:
                await store.writer.wait_answers()
        assert (store.durable, store.pending_records) == (1, 0)
        assert other.execute("SELECT count(*) FROM records").fetchone() == (5,)
        assert store.get("groups", "k0003") == _record(3)  # now from the database
    finally:
        other.close()
        store.close()


def test_the_agent_store_is_written_by_the_thread_unless_durability_is_periodic(tmp_path):
    """What `open_store` gives the daemon for the default configuration, and for periodic
    durability (which acknowledges commits: the loop makes them at once)."""
    for directory, storage, kind in ((tmp_path / "fsync", StorageConfig(), WriterThread),
                                     (tmp_path / "periodic",
                                      StorageConfig(durability="periodic"), None)):
        directory.mkdir()
        store = open_store(NodeConfig(name="a", data_dir=directory, storage=storage))
        try:
            if kind is None:
                assert not isinstance(store, PendingWritesStore)
            else:
                assert isinstance(store, PendingWritesStore)
                assert isinstance(store.writer, kind)
        finally:
            store.close()


def _agent_writing_with(tmp_path: Path, writer: str) -> tuple[NodeConfig, SqliteStore, Agent]:
    """An agent (not started) whose store the configuration's `storage.writer` chose."""
    config = NodeConfig(name="a", data_dir=tmp_path, listen=("127.0.0.1", 0),
                        storage=StorageConfig(writer=writer))
    create_identity(tmp_path / "identity.key")
    store = open_store(config)
    agent = Agent(config, load_identity(tmp_path / "identity.key"), (generate_secret(),),
                  store)
    return config, store, agent


@pytest.mark.parametrize("name", ["thread", "process"])
async def test_a_failed_write_stops_the_agent_and_is_never_answered(tmp_path, name):
    config, store, agent = _agent_writing_with(tmp_path, name)
    answered = []

    async def run_until_it_fails():
        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as nursery:
                await nursery.start(lambda task_status: agent.run(task_status=task_status,
                                                                  handle_signals=False))
                answered.append(await agent.write("groups", "g", encode_value({"n": 1})))
                with sqlite3.connect(config.store_file) as other:  # the disk refuses "h"
                    other.execute("CREATE TRIGGER refuse BEFORE INSERT ON records "
                                  "WHEN NEW.key = 'h' BEGIN SELECT RAISE(ABORT, 'no room'); "
                                  "END")
                answered.append(await agent.write("groups", "h", encode_value({"n": 2})))
                await trio.sleep_forever()  # not reached: the write above never returns

    try:
        with pytest.raises(BaseException) as caught:  # a group: unwrapped below
            await run_until_it_fails()
    finally:
        with pytest.raises(StoreError):  # failed, not hanging (a writer that drops failures)
            _bounded(store.writer.drain)
        store.close()
    assert len(answered) == 1  # the refused write was never answered
    leaves = exception_leaves(caught.value)
    assert any(isinstance(e, StoreError) and "writer failed" in str(e) and "no room" in str(e)
               for e in leaves), leaves
    reopened = SqliteStore(config.store_file)
    assert reopened.get("groups", "g") is not None and reopened.get("groups", "h") is None
    reopened.close()


async def test_a_writer_that_dies_stops_the_agent_and_its_write_is_never_answered(tmp_path):
    _, store, agent = _agent_writing_with(tmp_path, "process")
    assert isinstance(store.writer, WriterProcess)
    answered = []

    async def run_until_it_fails():
        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as nursery:
                await nursery.start(lambda task_status: agent.run(task_status=task_status,
                                                                  handle_signals=False))
                answered.append(await agent.write("groups", "g", encode_value({"n": 1})))
                os.kill(store.writer.process.pid, signal.SIGKILL)  # the writer we started
                store.writer.process.wait(timeout=WAIT_S)

                async def write():
                    answered.append(await agent.write("groups", "h", encode_value({"n": 2})))

                nursery.start_soon(write)
                await trio.sleep_forever()  # ended by the agent's failure

    with pytest.raises(BaseException) as caught:  # a group: unwrapped below
        await run_until_it_fails()
    assert len(answered) == 1  # the write after the writer died was never answered
    leaves = exception_leaves(caught.value)
    assert any(isinstance(e, StoreError) and "writer" in str(e) for e in leaves), leaves
    assert not any(isinstance(e, OSError) and e.errno == errno.EIO for e in leaves)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["thread", "process"])
def test_kill_9_of_the_agent_leaves_no_writer_and_loses_no_acknowledged_write(tmp_path, name):
    config = f'\n[storage]\nwriter = "{name}"\n'
    with LocalCluster(tmp_path, 1, extra_toml=config) as cluster:
        cluster.start(0)
        agent_pid = cluster.processes[0].pid
        writers = _children(agent_pid)
        assert len(writers) == (1 if name == "process" else 0)
        assert all(_alive(writer) for writer in writers)
        acknowledged = []
        with cluster.client(0) as client:
            for i in range(50):
                client.request("put", dataset="groups", key=f"w{i}", value={"i": i})
                acknowledged.append(f"w{i}")
        # A second agent on the same data directory is refused: the lock is the agent's.
        second = subprocess.run(
            [sys.executable, "-m", "gossipnode", "agent", "--config",
             str(cluster.data_dir(0) / "node.toml")],
            capture_output=True, text=True, timeout=WAIT_S, check=False)
        assert second.returncode == 2, second.stderr
        assert f"another agent (PID {agent_pid})" in second.stderr, second.stderr
        cluster.kill(0)  # SIGKILL, by the PID the cluster started
        _wait(lambda: not any(_alive(writer) for writer in writers),
              "end of the writer after its agent's")
        store = SqliteStore(cluster.data_dir(0) / "store.sqlite3")
        assert all(store.get("groups", key) is not None for key in acknowledged)
        store.close()
        cluster.start(0)  # the directory is free again
        with cluster.client(0) as client:
            assert client.request("get", dataset="groups", key="w49")["value"] == {"i": 49}
        if writers:
            assert _children(cluster.processes[0].pid) != writers
