"""How long the event loop is held: its lag, and the share of it the store's transactions take.

Rules:
1. The agent's timer loop, each time it runs the core's timers, says how late it is
   (`observe(due, now)`): the very lag a probe's timer, or its timeout, had. A store commit
   or any other long step on the loop shows up there, whatever caused it. No task of its
   own samples the loop: an idle agent wakes no more often for it (a sampler waking every
   50 ms cost about 6 ms of CPU per second, more than an idle agent's whole work).
2. Memory is bounded: the samples of the last `LAG_WINDOW_S` (at most `LAG_WINDOW_SAMPLES`
   of them, with their times), whose p50, p99 and maximum `info` shows; the worst lag of
   each of the last `SECONDS_KEPT` seconds; and since start a histogram of fixed buckets
   (`LAG_BUCKETS_S`, cumulative counts, as /metrics shows them).
3. `StoreMeter` adds up the seconds spent on the event loop inside the store's write
   calls (the lookup, the resolve and the transaction of `apply_changes`, and the rarer
   removals), wrapped around the store instance by `meter_store_writes`; so an operator
   can tell the store's share of the loop's time from the rest.
4. A late wake-up has two causes: the loop ran something else (a long step, a store
   commit), or the operating system did not run the loop's thread at all (every CPU
   busy). Each sample also takes the time the thread waited on a run queue since the last
   one (Linux schedstat, read from a descriptor kept open: 1.5 us a read): the part of a
   lag that was such a wait is not the loop's doing.
"""

from __future__ import annotations

import bisect
import os
import time
from collections import deque
from collections.abc import Callable
from functools import wraps
from typing import Any

import trio

__all__ = ["LAG_BUCKETS_S", "LAG_WINDOW_S", "LAG_WINDOW_SAMPLES", "SECONDS_KEPT", "LoopLag",
           "SecondMaxima", "StoreMeter", "meter_store_writes"]

# `info` shows the lag over this last stretch: long enough to hold a burst's worst moment
# between two looks of an operator or a scraper, short enough to say "now".
LAG_WINDOW_S = 10.0
# At most this many of the latest samples make the window's percentiles: the timer loop
# runs the core's timers up to a few hundred times a second under load (bounded memory).
LAG_WINDOW_SAMPLES = 2000
# The worst lag (and the longest store write) of each of this many last seconds is kept:
# a minute, so that a burst is seen whole by one look after it (a benchmark's, or an
# operator's who was paged), in 60 numbers.
SECONDS_KEPT = 60
# Histogram bucket upper bounds (seconds) of the lag since start, for /metrics: from a
# tenth of a millisecond (a free loop) to the probe timeout and beyond.
LAG_BUCKETS_S = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2,
                 0.5, 1.0, 2.0, 5.0)
# Store write calls timed by `meter_store_writes`: every call that writes on the loop.
STORE_WRITE_CALLS = ("apply_changes", "remove", "collect_tombstones", "clear_replicated",
                     "set_meta")


_SCHEDSTAT: list[int | None] = []  # the descriptor, once opened (None: not available)


def runqueue_wait_s() -> float | None:
    """Seconds the calling thread has waited on a run queue for a CPU since it started
    (Linux schedstat); None where the kernel does not say. The file is opened once, by
    the loop's thread (the one whose waits it tells), and read again in place."""
    if not _SCHEDSTAT:
        try:
            _SCHEDSTAT.append(os.open("/proc/thread-self/schedstat", os.O_RDONLY))
        except OSError:
            _SCHEDSTAT.append(None)
    descriptor = _SCHEDSTAT[0]
    if descriptor is None:
        return None
    try:
        return int(os.pread(descriptor, 64, 0).split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


class SecondMaxima:
    """The largest value seen in each of the last `SECONDS_KEPT` whole seconds of a clock:
    when the worst moments were (bounded: one pair per second)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._slots: deque[list[float]] = deque(maxlen=SECONDS_KEPT)

    def note(self, value: float) -> None:
        second = float(int(self._clock()))
        if self._slots and self._slots[-1][0] == second:
            self._slots[-1][1] = max(self._slots[-1][1], value)
        else:
            self._slots.append([second, value])

    def by_age(self) -> list[float]:
        """The maxima, newest first: entry i is the second that began about i seconds ago
        (0.0 for a second with nothing seen)."""
        now = int(self._clock())
        maxima = [0.0] * SECONDS_KEPT
        for second, value in self._slots:
            age = now - int(second)
            if 0 <= age < len(maxima):
                maxima[age] = value
        return maxima


class LoopLag:
    """The event loop's lag, as the timer loop observes it (rules 1 and 2)."""

    def __init__(self, clock: Callable[[], float] = trio.current_time,
                 meter: StoreMeter | None = None) -> None:
        """`meter`: a StoreMeter whose recent rate `recent()` reports too."""
        self._clock = clock
        self._meter = meter
        # (time, the meter's seconds) once a second over the window, oldest first.
        self._marks: deque[tuple[float, float]] = deque(maxlen=int(LAG_WINDOW_S) + 1)
        # The last LAG_WINDOW_SAMPLES samples, (when, lag), oldest first.
        self._window: deque[tuple[float, float]] = deque(maxlen=LAG_WINDOW_SAMPLES)
        # Counts per bucket of LAG_BUCKETS_S, the last one for lags above them all.
        self.bucket_counts = [0] * (len(LAG_BUCKETS_S) + 1)
        self.samples = 0
        self.sum_s = 0.0
        self.per_second = SecondMaxima(clock)
        # Rule 4: the seconds the loop's thread waited for a CPU, since start, and per
        # second the most of one sample's lag that was such a wait.
        self.cpu_wait_s = 0.0
        self.cpu_wait_per_second = SecondMaxima(clock)
        self._waited: float | None = None  # the run-queue wait at the previous sample

    def observe(self, due: float, now: float) -> None:
        """The timer loop ran timers due at `due` at `now` (rule 1): one sample."""
        waited_now = runqueue_wait_s()
        starved = (0.0 if self._waited is None or waited_now is None
                   else max(0.0, waited_now - self._waited))
        self._waited = waited_now
        self.record(max(0.0, now - due), starved)
        if self._meter is not None and (not self._marks or now - self._marks[-1][0] >= 1.0):
            self._marks.append((now, self._meter.seconds))

    def record(self, lag_s: float, starved_s: float = 0.0) -> None:
        """One sample: `lag_s` late, of which the loop's thread waited `starved_s` for a
        CPU since the previous sample (the rest of the lag: the loop ran something else)."""
        self._window.append((self._clock(), lag_s))
        self.bucket_counts[bisect.bisect_left(LAG_BUCKETS_S, lag_s)] += 1
        self.samples += 1
        self.sum_s += lag_s
        self.per_second.note(lag_s)
        self.cpu_wait_s += starved_s
        self.cpu_wait_per_second.note(min(lag_s, starved_s))

    def recent(self) -> dict[str, float | int]:
        """p50, p99 and maximum of the last `LAG_WINDOW_S` of samples (seconds; zeros
        before the first sample), and the seconds per second the store's write calls held
        the loop over about that window (0.0 before two marks a second apart)."""
        since = self._clock() - LAG_WINDOW_S
        ordered = sorted(lag for at, lag in self._window if at >= since)

        def at(fraction: float) -> float:
            return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0

        store_share = 0.0
        if len(self._marks) >= 2:
            (first_at, first_s), (last_at, last_s) = self._marks[0], self._marks[-1]
            store_share = (last_s - first_s) / (last_at - first_at)
        return {"p50_s": at(0.5), "p99_s": at(0.99), "max_s": ordered[-1] if ordered else 0.0,
                "samples": len(ordered), "store_write_s_per_s": store_share}


class StoreMeter:
    """Seconds spent on the loop in the store's write calls, and how many calls (rule 3)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        # The longest call in each of the last seconds: one long transaction, not many
        # short ones, is what delays a probe.
        self.longest = SecondMaxima(time.perf_counter)


def meter_store_writes(store: Any, meter: StoreMeter) -> None:
    """Time every write call of `store` (STORE_WRITE_CALLS it has) into `meter`, by
    wrapping the instance's bound methods: the store's class is left as it is."""
    for name in STORE_WRITE_CALLS:
        method = getattr(store, name, None)
        if method is not None:
            setattr(store, name, _timed(method, meter))


def _timed(method: Callable[..., Any], meter: StoreMeter) -> Callable[..., Any]:
    @wraps(method)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            took = time.perf_counter() - started
            meter.seconds += took
            meter.calls += 1
            meter.longest.note(took)
    return timed
