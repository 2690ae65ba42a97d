"""The event loop's lag is measured and shown: a step that holds the loop past a timer of the
core shows up in `info` and /metrics as lag of about its length, memory stays bounded, and
the time the store's writes hold the loop is counted."""

import os
import re
import subprocess
import sys
import time

import pytest
import trio

from gossipnode.core.records import Record, Version
from gossipnode.runtime.loop_lag import (
    LAG_WINDOW_S,
    LAG_WINDOW_SAMPLES,
    SECONDS_KEPT,
    LoopLag,
    SecondMaxima,
    StoreMeter,
    meter_store_writes,
    runqueue_wait_s,
)
from gossipnode.runtime.metrics import render_metrics
from gossipnode.runtime.status import info
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import encode_value

from .test_agent_sync import make_agent

# Every wait below is bounded by this: generous for a loaded 2-core machine.
WAIT_S = 10.0
# How long a test holds the loop: far above any scheduling noise.
HOLD_S = 0.2
# The agent test starts holding the loop this long before the core's next timer is due.
SHORT_S = 0.02


def _spin_the_loop() -> None:
    """A step that keeps the loop's thread running (runnable) for HOLD_S of wall time."""
    end = time.monotonic() + HOLD_S
    while time.monotonic() < end:
        pass


def _hold_the_loop() -> None:
    """A synchronous step of HOLD_S: nothing else on the loop runs meanwhile."""
    time.sleep(HOLD_S)


def test_a_timer_run_late_is_one_sample_of_its_lateness():
    now = [50.0]
    lag = LoopLag(clock=lambda: now[0])
    lag.observe(due=49.99, now=50.0)
    now[0] = 51.0
    lag.observe(due=50.7, now=51.0)
    lag.observe(due=51.5, now=51.0)  # early (a timer run as it fell due): no lag
    recent = lag.recent()
    assert recent["samples"] == 3 == lag.samples
    assert recent["max_s"] == pytest.approx(0.3)
    assert lag.sum_s == pytest.approx(0.31)
    assert lag.per_second.by_age()[:2] == [pytest.approx(0.3), pytest.approx(0.01)]
    now[0] = 51.0 + LAG_WINDOW_S + 0.5  # the window forgets samples older than itself
    assert lag.recent()["samples"] == 0 and lag.samples == 3


BUSY = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"


def _busy_on(cpu: int) -> list[subprocess.Popen]:
    """Two processes spinning on `cpu` (killed by the test that started them)."""
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    for process in busy:
        os.sched_setaffinity(process.pid, {cpu})
    return busy


@pytest.mark.skipif(runqueue_wait_s() is None, reason="the kernel does not say (schedstat)")
async def test_a_lag_while_every_cpu_is_busy_is_told_apart_as_waiting_for_a_cpu():
    """The loop's thread and two busy processes share one CPU: while a step keeps the loop
    busy for HOLD_S, the thread waits for that CPU about two thirds of the time, and the
    timer run after it says so."""
    lag = LoopLag()
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    busy = _busy_on(cpu)
    try:
        os.sched_setaffinity(0, {cpu})  # this thread only: the loop's
        lag.observe(time.monotonic(), time.monotonic())  # where the run-queue wait starts
        waited = lag.cpu_wait_s
        due = time.monotonic()
        _spin_the_loop()
        lag.observe(due, time.monotonic())
    finally:
        os.sched_setaffinity(0, before)
        for process in busy:  # the processes this test started, by their PIDs
            process.kill()
            process.wait(timeout=WAIT_S)
    assert lag.cpu_wait_s - waited >= HOLD_S / 4
    worst = max(lag.cpu_wait_per_second.by_age())
    assert HOLD_S / 4 <= worst <= max(lag.per_second.by_age())


def test_the_window_is_bounded_and_forgets_old_samples():
    lag = LoopLag(clock=lambda: 100.0)
    lag.record(3.0)  # long ago: pushed out of the window by the samples after it
    recorded = [i / 10_000 for i in range(3 * LAG_WINDOW_SAMPLES)]
    for value in recorded:
        lag.record(value)
    window = sorted(recorded[-LAG_WINDOW_SAMPLES:])
    recent = lag.recent()
    assert recent["samples"] == LAG_WINDOW_SAMPLES
    assert recent["max_s"] == window[-1]
    assert recent["p50_s"] == window[LAG_WINDOW_SAMPLES // 2]
    assert recent["p99_s"] == window[int(LAG_WINDOW_SAMPLES * 0.99)]
    # The histogram keeps everything since start, in a fixed number of buckets.
    assert lag.samples == 3 * LAG_WINDOW_SAMPLES + 1
    assert lag.bucket_counts[-1] == 0 and lag.bucket_counts[-2] == 1  # 3.0 s: (2, 5]
    # All of it in one second of the clock: that second's worst is the 3 s sample.
    assert lag.per_second.by_age()[0] == 3.0 and max(lag.per_second.by_age()[1:]) == 0.0


def test_per_second_maxima_keep_each_second_apart_and_forget_old_ones():
    now = [100.2]
    maxima = SecondMaxima(lambda: now[0])
    for at, value in ((100.2, 0.5), (100.9, 0.1), (101.5, 0.2), (103.0, 0.05)):
        now[0] = at
        maxima.note(value)
    assert maxima.by_age()[:4] == [0.05, 0.0, 0.2, 0.5]
    now[0] = 100.0 + SECONDS_KEPT + 0.5  # the second of 100 is kept no longer
    assert 0.5 not in maxima.by_age() and 0.2 in maxima.by_age()


class _SlowStore:
    """A store whose write call holds the loop for HOLD_S."""

    def apply_changes(self, records, resolve=None):
        time.sleep(HOLD_S)
        return list(records)

    def get(self, dataset, key):  # a read: not timed
        time.sleep(HOLD_S)


def test_the_store_meter_counts_the_seconds_of_every_write_call(tmp_path):
    slow, meter = _SlowStore(), StoreMeter()
    meter_store_writes(slow, meter)
    assert slow.apply_changes([1, 2]) == [1, 2]
    slow.get("groups", "g")
    assert meter.calls == 1 and HOLD_S <= meter.seconds < WAIT_S
    # On the real store, `apply` writes through `apply_changes` and is counted once.
    store, meter = SqliteStore(tmp_path / "s.sqlite3"), StoreMeter()
    meter_store_writes(store, meter)
    record = Record("groups", "g", encode_value({"n": 1}), Version(1, 0, b"\x01" * 32))
    assert store.apply([record]) == [record]
    assert store.remove("groups", ["g"]) == 1
    assert meter.calls == 2 and meter.seconds > 0
    store.close()


async def test_info_and_metrics_show_the_lag_and_the_store_share(tmp_path):
    agent = make_agent(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: agent.run(task_status=task_status,
                                                          handle_signals=False))
        with trio.fail_after(WAIT_S):
            await agent.write("groups", "g", encode_value({"n": 1}))
        # Hold the loop from just before the core's next timer until HOLD_S later: the
        # timer loop then runs that timer about HOLD_S late.
        with trio.fail_after(WAIT_S):
            # A deadline of the core: no event tells when one is set.
            while (due := agent.core.next_deadline()) is None:  # noqa: ASYNC110
                await trio.sleep(0.05)
        with trio.fail_after(WAIT_S):
            await trio.sleep_until(max(trio.current_time(), due - SHORT_S))
        _hold_the_loop()
        with trio.fail_after(WAIT_S):
            while max(agent.loop_lag.per_second.by_age()) < HOLD_S - SHORT_S:  # noqa: ASYNC110
                await trio.sleep(0.01)
        shown = info(agent)
        text = render_metrics(agent)
        agent.stop()
    loop = shown["loop"]
    assert loop["lag_max_s"] >= HOLD_S - SHORT_S
    assert loop["lag_p50_s"] <= loop["lag_p99_s"] <= loop["lag_max_s"]
    assert loop["window_s"] > 0 and loop["lag_samples"] > 0
    # The held second is among the last ones, and no second's worst exceeds the window's.
    assert max(loop["lag_max_s_per_second"]) == loop["lag_max_s"]
    assert len(loop["lag_max_s_per_second"]) == SECONDS_KEPT
    assert 0 < max(loop["store_write_max_s_per_second"]) <= shown["store"]["write_s_total"]
    assert len(loop["lag_cpu_wait_max_s_per_second"]) == SECONDS_KEPT
    assert loop["cpu_wait_s_total"] >= 0
    assert re.search(r"^gossipnode_event_loop_cpu_wait_seconds_total [\d.e-]+$", text, re.M)
    assert shown["store"]["write_calls"] >= 1 and shown["store"]["write_s_total"] > 0
    buckets = [int(n) for n in re.findall(
        r'^gossipnode_event_loop_lag_seconds_bucket\{le="[^"]+"\} (\d+)$', text, re.M)]
    assert buckets == sorted(buckets) and buckets[-1] >= loop["lag_samples"]
    count = re.search(r"^gossipnode_event_loop_lag_seconds_count (\d+)$", text, re.M)
    assert count is not None and int(count.group(1)) == buckets[-1]
    assert re.search(r'^gossipnode_event_loop_lag_recent_seconds\{stat="max"\} ([\d.]+)$',
                     text, re.M)
    written = re.search(r"^gossipnode_store_write_seconds_total ([\d.e-]+)$", text, re.M)
    assert written is not None and float(written.group(1)) > 0
