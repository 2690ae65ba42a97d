"""The agent's disk sync runs off the event loop: a write is answered only once a sync covers
it, while membership traffic goes out at once, and the loop keeps running meanwhile; with
periodic durability a write is answered once committed, and synced within the interval."""

import errno
import threading
import time

import pytest
import trio

from gossipnode.config import NodeConfig, StorageConfig
from gossipnode.core.membership import Ping, PushPull
from gossipnode.identity import create_identity, generate_secret, load_identity
from gossipnode.runtime import durability
from gossipnode.runtime.agent import Agent
from gossipnode.runtime.metrics import render_metrics
from gossipnode.runtime.status import info
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import encode_value
from tests.exception_leaves import exception_leaves

# Every wait below is bounded by this: generous for a loaded 2-core machine.
WAIT_S = 10.0


def make_agent(directory, storage=None):
    config = NodeConfig(name="a", data_dir=directory, listen=("127.0.0.1", 0),
                        storage=storage or StorageConfig())
    create_identity(directory / "identity.key")
    store = SqliteStore(config.store_file, deferred_sync=True)
    return Agent(config, load_identity(directory / "identity.key"), (generate_secret(),),
                 store)


async def test_a_write_waits_for_its_sync_and_a_probe_does_not(tmp_path):
    agent = make_agent(tmp_path)
    gate = threading.Event()  # the disk: a sync returns once the gate opens
    syncs = []
    real_sync = agent.store.sync_wal

    def slow_sync():
        assert gate.wait(WAIT_S)
        syncs.append(agent.store.commits)
        return real_sync()

    agent.store.sync_wal = slow_sync
    sent = []
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: agent.run(task_status=task_status,
                                                          handle_signals=False))
        agent.links.enqueue = lambda to, peer, message: sent.append(message)
        answered = trio.Event()

        async def write():
            await agent.write("groups", "g", encode_value({"n": 1}))
            answered.set()

        nursery.start_soon(write)
        with trio.move_on_after(0.5):
            await answered.wait()
        assert not answered.is_set()  # committed, not yet synced: no answer
        # Meanwhile the loop runs and membership traffic is not held back: a join goes out.
        agent.input(lambda now: agent.core.join([("127.0.0.1", 9)], now))
        assert any(isinstance(m, Ping | PushPull) for m in sent)
        gate.set()
        with trio.fail_after(WAIT_S):
            await answered.wait()
        assert syncs and agent.store.durable >= syncs[-1]
        assert agent.store.get("groups", "g") is not None
        agent.stop()


async def test_writes_arriving_during_a_sync_are_committed_together_before_the_next(tmp_path):
    """Rule 5 of runtime/durability.py: a write that comes while a sync runs is not
    committed then (it could not be acknowledged before the next sync anyway); the writes
    that came meanwhile are committed as one batch, which the very next sync covers."""
    agent = make_agent(tmp_path)
    gate = threading.Event()
    syncs = []  # the commit count each sync started with
    calls = []  # every sync, as `info` and /metrics count them
    real_sync = agent.store.sync_wal

    def gated_sync():
        syncs.append(agent.store.commits)
        calls.append(1)
        assert gate.wait(WAIT_S)
        return real_sync()

    agent.store.sync_wal = gated_sync
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: agent.run(task_status=task_status,
                                                          handle_signals=False))
        gate.set()  # what the agent wrote as it started is synced first
        with trio.fail_after(WAIT_S):
            while agent.store.durable < agent.store.commits:  # noqa: ASYNC110
                await trio.sleep(0.01)
        gate.clear()
        syncs.clear()
        answered = []

        async def write(key):
            await agent.write("groups", key, encode_value({"key": key}))
            answered.append(key)

        nursery.start_soon(write, "first")
        with trio.fail_after(WAIT_S):
            while not syncs:  # noqa: ASYNC110 (the sync thread notes it; nothing to wait on)
                await trio.sleep(0.01)
        committed = agent.store.commits
        for n in range(5):  # one after the other while the first sync runs
            nursery.start_soon(write, f"later {n}")
            await trio.sleep(0.05)
        assert agent.store.commits == committed  # none committed during the sync
        assert agent.store.get("groups", "later 0") is None
        gate.set()
        with trio.fail_after(WAIT_S):
            while len(answered) < 6:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert answered[0] == "first"
        assert agent.store.commits == committed + 1  # the five as one commit...
        assert syncs[1] == committed + 1  # ...which the next sync covered
        assert all(agent.store.get("groups", f"later {n}") is not None for n in range(5))
        assert info(agent)["store"]["syncs"] == len(calls)
        assert f"\ngossipnode_store_syncs_total {len(calls)}\n" in render_metrics(agent)
        agent.stop()


async def test_periodic_durability_answers_a_write_once_committed_and_syncs_it_soon(tmp_path):
    agent = make_agent(tmp_path, StorageConfig(durability="periodic", fsync_interval_ms=50))
    gate = threading.Event()
    real_sync = agent.store.sync_wal

    def gated_sync():
        assert gate.wait(WAIT_S)
        return real_sync()

    agent.store.sync_wal = gated_sync
    sent = []
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: agent.run(task_status=task_status,
                                                          handle_signals=False))
        agent.links.enqueue = lambda to, peer, message: sent.append(message)
        with trio.fail_after(WAIT_S):  # no sync has returned: answered all the same
            await agent.write("groups", "g", encode_value({"n": 1}))
        assert agent.store.durable < agent.store.commits
        gate.set()
        with trio.fail_after(WAIT_S):
            # `durable` is a plain counter the sync loop moves: nothing to wait on but it.
            while agent.store.durable < agent.store.commits:  # noqa: ASYNC110
                await trio.sleep(0.01)
        agent.stop()


class _Disk:
    """A store as `Durability` sees it: commits, how many are durable, and a sync that
    notes when it started."""

    def __init__(self):
        self.commits = self.durable = 0
        self.sync_started = []

    def commit(self):
        self.commits += 1

    def sync_wal(self):
        self.sync_started.append(time.monotonic())
        return self.commits


async def test_a_sync_only_peers_wait_for_is_spaced_and_a_client_write_is_not(monkeypatch):
    """Rule 4 of runtime/durability.py: the acknowledgements of pushes share syncs (one at
    most every PEER_SYNC_INTERVAL_S), while a client write's sync starts at once."""
    monkeypatch.setattr(durability, "PEER_SYNC_INTERVAL_S", 1.0)
    disk = _Disk()
    released = {ack: trio.Event() for ack in ("ack 1", "ack 2", "ack 3")}

    def carry_out(events):
        for event in events:
            released[event].set()

    syncing = durability.Durability(disk, StorageConfig(), carry_out)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(syncing.sync_loop)
        for ack in ("ack 1", "ack 2"):  # two pushes from a peer, one after the other
            disk.commit()
            syncing.dispatch([ack], lambda event: False)
            with trio.fail_after(WAIT_S):
                await released[ack].wait()
        first, second = disk.sync_started
        assert second - first >= 1.0  # the second waited for the interval
        monkeypatch.setattr(durability, "PEER_SYNC_INTERVAL_S", 3600.0)
        disk.commit()
        syncing.dispatch(["ack 3"], lambda event: False)  # waits an hour for its sync...
        await trio.sleep(0.2)
        assert not released["ack 3"].is_set()
        disk.commit()  # ...unless a client write comes: it is answered, ack 3 goes with it
        answered = trio.Event()
        syncing.answer([answered])
        with trio.fail_after(WAIT_S):
            await answered.wait()
            await released["ack 3"].wait()
        nursery.cancel_scope.cancel()


async def test_the_sync_thread_returns_the_sync_and_outlives_a_cancellation():
    """A sync that started is waited for even when its caller is cancelled (the store must
    not close its files under it), and its error reaches the caller."""
    gate = threading.Event()
    finished = []

    def sync():
        assert gate.wait(WAIT_S)
        finished.append(threading.current_thread() is not threading.main_thread())
        return 7

    async def open_gate_later():
        await trio.sleep(0.3)
        gate.set()

    syncer = durability.SyncThread(sync)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(open_gate_later)
        with trio.move_on_after(0.05):
            assert await syncer.run() == 7  # the cancellation cannot cut it short
        assert finished == [True]  # it ran in the thread, to the end

    def failing():
        raise OSError(errno.EIO, "input/output error")

    failing_syncer = durability.SyncThread(failing)
    with pytest.raises(OSError, match="input/output"):
        await failing_syncer.run()
    syncer.stop()
    failing_syncer.stop()


async def test_a_failed_sync_acknowledges_nothing_and_stops_the_agent(tmp_path):
    """Nothing unacknowledged is reported acknowledged: the write whose sync failed is
    never answered, and the agent stops with the disk's error."""
    agent = make_agent(tmp_path)
    real_sync = agent.store.sync_wal
    disk_gone = threading.Event()  # after start-up: the control socket is up by then

    def failing_sync():
        if disk_gone.is_set():
            raise OSError(errno.EIO, "input/output error")
        return real_sync()

    agent.store.sync_wal = failing_sync
    answered = []

    async def run_until_it_fails():
        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as nursery:
                await nursery.start(lambda task_status: agent.run(task_status=task_status,
                                                                  handle_signals=False))

                async def write():
                    answered.append(await agent.write("groups", "g", encode_value({"n": 1})))

                disk_gone.set()
                nursery.start_soon(write)
                await trio.sleep_forever()  # ended by the agent's failure

    with pytest.raises(BaseException) as caught:  # a group: unwrapped below
        await run_until_it_fails()
    assert not answered
    leaves = exception_leaves(caught.value)
    assert any(isinstance(e, OSError) and e.errno == errno.EIO for e in leaves), leaves
