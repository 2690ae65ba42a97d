"""The store's writer process (`storage.writer = "process"`): what it is handed is on disk
when it answers, a failed write is one line and acknowledges nothing, a writer that dies
stops the agent, and it dies with its agent (kill -9 included) without ever holding the
data directory's lock."""

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from gossipnode.config import NodeConfig, StorageConfig
from gossipnode.config_rules import check_config
from gossipnode.core.records import Record, Version
from gossipnode.identity import create_identity, generate_secret, load_identity
from gossipnode.runtime.agent import Agent
from gossipnode.runtime.writer_process import WriterProcess
from gossipnode.storage import SqliteStore, StoreError
from gossipnode.storage.pending_writes import PendingWritesStore
from gossipnode.wire.cbor import encode_value

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from local_cluster import LocalCluster

# Every wait below is bounded by this: generous for a loaded 2-core machine.
WAIT_S = 30.0
POLL_S = 0.05
ORIGIN = b"\x07" * 32
WRITER_CONFIG = '\n[storage]\nwriter = "process"\n'


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


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {WAIT_S} s"
        time.sleep(POLL_S)


def test_what_the_writer_answers_is_in_the_database_and_reads_see_it_before(tmp_path):
    store = PendingWritesStore(tmp_path / "store.sqlite3", WriterProcess)
    try:
        for start in range(0, 300, 30):  # batches of 30, one multi-row statement each
            store.apply([_record(i) for i in range(start, start + 30)])
        store.apply([_record(i, None, 2) for i in range(100)])  # a batch of 100 tombstones
        assert store.count("groups") == 200  # at once, answered or not
        assert store.get("groups", "k0000").value is None
        store.writer.drain()
        assert store.durable == store.commits == 11
        assert store.pending_records == 0
        # Another connection (no gossipnode code) finds every row the writer answered for.
        with sqlite3.connect(tmp_path / "store.sqlite3") as other:
            live, dead = other.execute(
                "SELECT count(value), sum(value IS NULL) FROM records").fetchone()
        assert (live, dead) == (200, 100)
    finally:
        store.close()
    assert store.writer.process.returncode == 0  # ended by the end of its socket
    reopened = SqliteStore(tmp_path / "store.sqlite3")
    assert reopened.count("groups") == 200 and reopened.count("groups", tombstones=True) == 300
    reopened.close()


def test_a_failed_write_is_one_line_and_nothing_after_it_is_answered(tmp_path):
    answers = []
    writer = WriterProcess(tmp_path / "store.sqlite3", answers.append)
    SqliteStore(tmp_path / "store.sqlite3").close()  # the schema, as the agent's store makes
    writer.submit(1, (("groups", "a", 1, 0, ORIGIN, b"\xa0", None),))
    writer.drain()
    writer.submit(2, ((None, "b", 1, 0, ORIGIN, b"\xa0", None),))  # NOT NULL: refused
    writer.submit(3, (("groups", "c", 1, 0, ORIGIN, b"\xa0", None),))
    with pytest.raises(StoreError) as caught:
        writer.drain()
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "store.sqlite3") in message
    assert "NOT NULL" in message
    assert answers == [1]
    with pytest.raises(StoreError):  # and it stays failed
        writer.submit(4, ())
    writer.close()
    assert writer.process.returncode == 1
    reopened = SqliteStore(tmp_path / "store.sqlite3")
    assert reopened.get("groups", "a") is not None and reopened.get("groups", "c") is None
    reopened.close()


def test_the_writer_needs_fsync_durability_and_is_off_by_default():
    assert NodeConfig().storage.writer == "loop"
    periodic = NodeConfig(storage=StorageConfig(durability="periodic", writer="process"))
    assert check_config(periodic)[0] == "storage.writer"
    assert check_config(NodeConfig(storage=StorageConfig(writer="thread")))[0] == \
        "storage.writer"
    assert check_config(NodeConfig(storage=StorageConfig(writer="process"))) is None


async def test_a_writer_that_dies_stops_the_agent_and_its_write_is_never_answered(tmp_path):
    config = NodeConfig(name="a", data_dir=tmp_path, listen=("127.0.0.1", 0),
                        storage=StorageConfig(writer="process"))
    create_identity(tmp_path / "identity.key")
    store = PendingWritesStore(config.store_file, WriterProcess)
    agent = Agent(config, load_identity(tmp_path / "identity.key"), (generate_secret(),),
                  store)
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
    leaves = [caught.value]
    while any(isinstance(e, BaseExceptionGroup) for e in leaves):
        leaves = [leaf for e in leaves
                  for leaf in (e.exceptions if isinstance(e, BaseExceptionGroup) else [e])]
    assert any(isinstance(e, StoreError) and "writer" in str(e) for e in leaves), leaves
    assert not any(isinstance(e, OSError) and e.errno == errno.EIO for e in leaves)


@pytest.mark.slow
def test_kill_9_of_the_agent_leaves_no_writer_and_loses_no_acknowledged_write(tmp_path):
    with LocalCluster(tmp_path, 1, extra_toml=WRITER_CONFIG) as cluster:
        cluster.start(0)
        agent_pid = cluster.processes[0].pid
        writers = _children(agent_pid)
        assert len(writers) == 1 and _alive(writers[0])
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
        _wait(lambda: not _alive(writers[0]), "end of the writer after its agent's")
        store = SqliteStore(cluster.data_dir(0) / "store.sqlite3")
        assert all(store.get("groups", key) is not None for key in acknowledged)
        store.close()
        cluster.start(0)  # the directory is free again
        with cluster.client(0) as client:
            assert client.request("get", dataset="groups", key="w49")["value"] == {"i": 49}
        assert _children(cluster.processes[0].pid) != writers
