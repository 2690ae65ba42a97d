"""The agent: the Trio shell that runs one NodeCore with real time, sockets and a store.

Theory of operation. The agent owns the only NodeCore of the process and calls it from one
Trio thread, so the core needs no locks. Every input (a peer's message, a lost connection,
a timer, a control request) is one synchronous core call followed by `_dispatch`, which
carries out the core's events: `Send` goes into the bounded outbound link of its address,
`Disconnect` closes every connection with that peer, both directions (runtime/
disconnects.py), the facts are logged. After every input the timer task is
woken to re-arm at the core's `next_deadline()`.

Nothing a write made goes out before its commit may be acknowledged, and no disk sync
runs on the Trio thread (runtime/durability.py, `storage.durability`): events of an input
are handed to `Durability.dispatch`, which carries them out at once or holds them until the
sync that covers the input's commit; membership messages always go at once, so a disk sync
never delays a probe.

Services, each started with `nursery.start`: the signal handler (runtime/signals.py), the
peer listener (runtime/transport.py), the outbound links (runtime/links.py), the control
socket (runtime/control.py), the optional /metrics listener (runtime/metrics_http.py), the
timer. On `stop()` (SIGTERM, SIGINT, `gossipnode leave`) the agent leaves the cluster, gives
the leave a moment to go out, closes its peers and its store, and returns. The process
around it (lock, permissions, start-up errors) is runtime/daemon.py.

Time. The core's `now` is Trio's clock (`trio.current_time()`, monotonic), so every timer
follows it and the agent runs under `trio.testing.MockClock`; a wall clock step moves no
timer. The wall clock (`wall_clock_ms`) is injected into the core for version stamps and
tombstone ages only, and gives the incarnation. An `Agent` is therefore built inside a Trio
run (runtime/daemon.py `run_agent` does so).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing
import trio
import trio.lowlevel

from ..config import NodeConfig, format_address
from ..core.errors import LocalProtocolError
from ..core.events import (
    Disconnect,
    MemberChanged,
    PeerRefused,
    RecordsPurged,
    Send,
    SyncCompleted,
)
from ..core.membership import ALIVE, SUSPECT
from ..core.node import MEMBERSHIP_MESSAGES, NodeCore
from ..core.records import Record
from ..driving import WRITE_BATCH_MAX, WRITE_QUEUE_MAX, commit_writes, core_arguments
from ..identity import Identity, format_node_id, short_id
from ..storage import SqliteStore
from .audit import log_quarantine
from .disconnects import Disconnects
from .durability import Durability
from .links import Links
from .listener import serve
from .logs import LogTail
from .loop_lag import LoopLag, StoreMeter, meter_store_writes
from .transport import ConnectionClosed, PeerConnection, TransportStatus

__all__ = ["Agent", "wall_clock_ms"]

logger = logging.getLogger("gossipnode.agent")

# Start-up logs digest-building progress for datasets at least this large.
LARGE_DATASET_RECORDS = 100_000
# After SIGTERM the leave announcement gets this long to reach peers before we close.
LEAVE_FLUSH_S = 1.0
META_INCARNATION = "incarnation"
META_REPLICA_MARKER = "replica_marker"
REPLICA_MARKER_FILE = "replica.marker"


class _PendingWrite:
    __slots__ = ("done", "result", "write")

    def __init__(self, write: tuple[str, str, bytes | None]) -> None:
        self.write = write
        self.done = trio.Event()
        self.result: Record | LocalProtocolError | None = None


def _verify(node_id: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(node_id).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError,
            TypeError):
        return False
    return True


def wall_clock_ms() -> int:
    """The wall clock in Unix milliseconds (version stamps, tombstone ages, incarnation)."""
    return time.time_ns() // 1_000_000


class Agent:
    def __init__(
        self,
        config: NodeConfig,
        identity: Identity,
        secrets: tuple[bytes, ...],
        store: SqliteStore,
        *,
        log_tail: LogTail | None = None,
        clock: Callable[[], float] = trio.current_time,
        wall_ms: Callable[[], int] = wall_clock_ms,
        config_path: Path | None = None,
    ) -> None:
        """Call inside a Trio run: `clock` (monotonic seconds, the core's `now`) is Trio's
        clock unless a test passes another; `wall_ms` is the wall clock in milliseconds.
        `config_path`: the node.toml a SIGHUP reloads (None: nothing to reload)."""
        self.config = config
        self.config_path = config_path
        self.identity = identity
        self.secrets = secrets
        self.store = store
        self.log_tail = log_tail
        self.clock = clock
        self.wall_ms = wall_ms
        self.started_at = clock()
        self.transport_status = TransportStatus()
        incarnation = self._next_incarnation()
        self._check_replica_marker()
        self.core = NodeCore(
            config,
            store=store,
            node_id=identity.node_id,
            rng=random.Random(),
            now=clock(),
            wall_ms=wall_ms,
            sign=identity.sign,
            verify=_verify,
            incarnation=incarnation,
            **core_arguments(),
            progress=_log_progress,
        )
        self.quarantined = False
        self.links = Links(config, identity, secrets, self._deliver, self._lost,
                           self.transport_status)
        self.disconnects = Disconnects(self.links, clock, wall_ms)
        self.listen_address: tuple[str, int] | None = None
        # True once every service is up: a failure before that is a start-up failure.
        self.serving = False
        # Where /metrics is served over HTTP (metrics_listen), once bound.
        self.metrics_address: tuple[str, int] | None = None
        # Where HKP is served (hkp_listen), once bound.
        self.hkp_address: tuple[str, int] | None = None
        self._wake = trio.Event()
        self._stopping = trio.Event()
        self.messages_sent: Counter[str] = Counter()
        self.messages_received: Counter[str] = Counter()
        # Called with every SyncCompleted event (a `repair` waits on its sessions so).
        self.sync_listeners: list[Callable[[SyncCompleted], None]] = []
        # When events and answers to writes may go out (runtime/durability.py).
        # Client writes for the group commit (`_write_batches`): the queue, and the one
        # taken from it that waits for its commit's turn.
        self._write_queue, self._writes_queued = trio.open_memory_channel[_PendingWrite](
            WRITE_QUEUE_MAX)
        self._write_waiting: _PendingWrite | None = None
        self.durability = Durability(store, config.storage, self._carry_out,
                                     self._commit_queued)
        # How long the loop is held, and by the store's writes how much (runtime/loop_lag.py).
        self.store_meter = StoreMeter()
        meter_store_writes(store, self.store_meter)
        self.loop_lag = LoopLag(clock, self.store_meter)

    # --- the services --------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
                  handle_signals: bool = True) -> None:
        """Run until SIGTERM/SIGINT (or `stop()`), then leave and shut down cleanly."""
        from .control import serve_control
        from .signals import handle_agent_signals

        try:
            async with trio.open_nursery() as nursery:
                if handle_signals:  # first: a signal during start-up still leaves cleanly
                    await nursery.start(handle_agent_signals, self)
                await nursery.start(self.links.run)
                with _naming("listen", self.config.listen):
                    self.listen_address = await nursery.start(
                        partial(serve, status=self.transport_status,
                                is_member=self._is_live_member), self.config.listen,
                        self.identity, lambda: self.secrets, self.config.wire,
                        self._serve_peer,
                    )
                nursery.start_soon(self.durability.sync_loop)
                if self.store.deferred_sync:  # else each commit syncs, checkpoints too
                    nursery.start_soon(self.durability.checkpoint_loop)
                await nursery.start(self._write_batches)
                await nursery.start(serve_control, self)
                if self.config.metrics_listen is not None:
                    from .metrics_http import serve_metrics  # and h11: only when configured

                    with _naming("metrics_listen", self.config.metrics_listen):
                        await nursery.start(serve_metrics, self, self.config.metrics_listen)
                if self.config.hkp_listen is not None:
                    from .hkp import serve_hkp

                    with _naming("hkp_listen", self.config.hkp_listen):
                        self.hkp_address = await nursery.start(serve_hkp, self)
                nursery.start_soon(self._timer_loop)
                self.input(lambda now: self.core.join(self.config.join, now))
                logger.info(
                    "node %s (%s) listening on %s", self.config.name,
                    format_node_id(self.identity.node_id), format_address(self.listen_address),
                )
                self.serving = True
                task_status.started(self.listen_address)
                await self._stopping.wait()
                logger.info("leaving the cluster")
                self.input(lambda now: self.core.leave(now))
                await trio.sleep(LEAVE_FLUSH_S)
                nursery.cancel_scope.cancel()
        finally:
            self.store.close()
            if self.serving:
                logger.info("stopped")

    async def write(self, dataset: str, key: str, value: bytes | None) -> Record:
        """Write (value None: delete) and return once durable. Writes that arrive together
        share one disk sync. Raises LocalProtocolError as NodeCore.put does."""
        pending = _PendingWrite((dataset, key, value))
        try:  # the writer blocks on `done` next anyway: no checkpoint of its own here
            self._write_queue.send_nowait(pending)
        except trio.WouldBlock:  # WRITE_QUEUE_MAX writes queued: wait for room
            await self._write_queue.send(pending)
        await pending.done.wait()
        if isinstance(pending.result, LocalProtocolError):
            raise pending.result
        assert pending.result is not None
        return pending.result

    async def _write_batches(self, *,
                             task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                             ) -> None:
        """Group commit: take the writes queued since the last batch and commit them in
        one store transaction (`_commit_queued`) when it is their turn, or let the syncer
        commit them just before its next sync (durability.py rule 5)."""
        task_status.started()
        async for first in self._writes_queued:
            self._write_waiting = first
            # Not while a sync runs: its commit would wait for the next sync anyway, which
            # commits it with the writes arriving meanwhile (durability.py rule 5).
            await self.durability.commit_turn()
            self._commit_queued()

    def _commit_queued(self) -> None:
        """Commit the writes waiting for their turn as one batch (the one taken from the
        queue first, then the queue's, `WRITE_BATCH_MAX` at most), and answer each writer
        once its commit may be acknowledged (`Durability.answer`)."""
        batch = [] if self._write_waiting is None else [self._write_waiting]
        self._write_waiting = None
        while len(batch) < WRITE_BATCH_MAX:
            try:
                batch.append(self._writes_queued.receive_nowait())
            except trio.WouldBlock:
                break
        if not batch:
            return
        results = self.input(
            lambda now: commit_writes(self.core, [w.write for w in batch], now)
        )
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
        self.durability.answer([pending.done for pending in batch])

    def stop(self) -> None:
        self._stopping.set()

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.core.next_deadline()
            wait_s = math.inf if deadline is None else max(0.0, deadline - self.clock())
            self._wake = trio.Event()
            with trio.move_on_after(wait_s):
                await self._wake.wait()
            if deadline is not None and (now := self.clock()) >= deadline:
                self.loop_lag.observe(deadline, now)  # how late a timer ran (loop_lag.py)
                self.input(self.core.handle_timer)
            await trio.lowlevel.checkpoint()  # let other tasks run between bursts of timers

    def _is_live_member(self, node_id: bytes) -> bool:
        """Alive or suspect in our member table: the listener spares its connections when
        over `wire.connections_max` (runtime/listener.py rule 3)."""
        member = self.core.membership.member(node_id)
        return member is not None and member.state in (ALIVE, SUSPECT)

    async def _serve_peer(self, connection: PeerConnection) -> None:
        """Inbound connections: every message goes to the core, tagged with the proven id,
        until the connection closes or the core cuts that peer off. Meanwhile our links
        to that peer may send over it (runtime/links.py rule 7)."""
        with self.disconnects.inbound(connection) as cut, self.links.offered(connection):
            while not cut.cancel_called:
                try:
                    message = await connection.receive()
                except ConnectionClosed:
                    return
                self._deliver(connection.peer_id, message)

    # --- inputs --------------------------------------------------------------------------------

    def input(self, call: Callable[[float], Any]) -> Any:
        """Run one core input at the current time, carry out its events, re-arm the timer."""
        now = self.clock()
        result = call(now)
        self._dispatch()
        self._wake.set()
        quarantined = self.core.quarantined(now)
        if quarantined != self.quarantined:  # entered or left: the audit trail says so
            self.quarantined = quarantined
            log_quarantine(quarantined, "no completed sync within the tombstone grace period")
        return result

    def _deliver(self, peer: bytes, message: object) -> None:
        self.messages_received[type(message).__name__] += 1
        self.input(lambda now: self.core.receive(peer, message, now))

    def _lost(self, address: tuple[str, int]) -> None:
        if not self._stopping.is_set():
            self.input(lambda now: self.core.connection_lost(address, now))

    def _dispatch(self) -> None:
        self.durability.dispatch(self.core.events(), _goes_at_once)

    def _carry_out(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, Send):
                self.messages_sent[type(event.message).__name__] += 1
                self.links.enqueue(event.to, event.peer, event.message)
            elif isinstance(event, Disconnect):
                cut = self.disconnects.cut(event)
                logger.warning("disconnecting %s at %s (%d connections): %s",
                               short_id(event.peer) if event.peer else "?",
                               format_address(event.to) if event.to else "?", cut.closed,
                               event.reason)
            elif isinstance(event, MemberChanged):
                if event.state == "alive":
                    self.links.reachable(event.address)
                logger.info("member %s (%s) at %s is %s", event.name, short_id(event.node_id),
                            format_address(event.address), event.state)
            elif isinstance(event, PeerRefused):
                logger.warning("refused from %s: %s", short_id(event.peer), event.reason)
            elif isinstance(event, RecordsPurged):
                logger.info("removed %d %s records: %s", len(event.keys), event.dataset,
                            event.reason)
            elif isinstance(event, SyncCompleted):
                for listener in list(self.sync_listeners):
                    listener(event)

    # --- start-up bookkeeping ------------------------------------------------------------------

    def _next_incarnation(self) -> int:
        """Higher than any before, even after a restore: wall ms, or last + 1."""
        stored = self.store.get_meta(META_INCARNATION)
        last = int.from_bytes(stored, "big") if stored else 0
        incarnation = max(last + 1, self.wall_ms())
        self.store.set_meta(META_INCARNATION, incarnation.to_bytes(8, "big"))
        return incarnation

    def _check_replica_marker(self) -> None:
        """A store whose marker differs from the data directory's was restored from a
        backup, or copied from elsewhere: start a new replica generation.

        The marker is renewed at every start, in the store and in the data directory, so a
        backup of the store taken before any later start no longer matches. (A snapshot of
        the whole directory restores both and cannot be told from here; its incarnation,
        taken from the wall clock, still rejoins above the old one.)"""
        marker_file = self.config.data_dir / REPLICA_MARKER_FILE
        stored = self.store.get_meta(META_REPLICA_MARKER)
        on_disk = marker_file.read_bytes() if marker_file.exists() else None
        if stored is not None and stored != on_disk:
            generation = int.from_bytes(self.store.get_meta("generation") or b"\x01", "big") + 1
            self.store.set_meta("generation", generation.to_bytes(8, "big"))
            logger.warning(
                "the store was restored or copied (replica marker mismatch): starting replica "
                "generation %d", generation,
            )
        marker = os.urandom(16)
        self.store.set_meta(META_REPLICA_MARKER, marker)
        temporary = marker_file.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(marker)
        os.replace(temporary, marker_file)


def _goes_at_once(event: object) -> bool:
    """Membership messages never depend on the store: they are never held for a sync."""
    return isinstance(event, Send) and isinstance(event.message, MEMBERSHIP_MESSAGES)


@contextlib.contextmanager
def _naming(key: str, address: tuple[str, int]) -> Iterator[None]:
    """A bind failure names the setting and the address, so its one line says what to fix."""
    try:
        yield
    except OSError as error:
        raise OSError(error.errno, f"{key} {format_address(address)}: "
                      f"{(error.strerror or str(error)).lower()}") from None


def _log_progress(dataset: str, records: int) -> None:
    if records >= LARGE_DATASET_RECORDS:  # small stores build in a blink: say nothing
        logger.info("building digests: %s, %d records so far", dataset, records)
