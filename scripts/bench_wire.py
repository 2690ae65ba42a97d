"""What the secure wire costs: handshakes per second and channel throughput over loopback.

Prints, for 1 KiB and 64 KiB messages, the MB/s of the full message path (encode, seal,
TCP, open, strict decode) next to the raw socket moving the same length-prefixed bytes,
and the in-process seal+open rate (crypto alone). Client and server run in one process on
127.0.0.1, so they share a CPU: treat the figures as a relative cost, not line rate.

And what the check of a message's declared structure (wire/declared.py) costs and saves,
with it and without it, interleaved in one process: CPU milliseconds to refuse a 2.9 MB
push-pull of 20,000 statements (five times the protocol's bound), and CPU microseconds to
decode valid messages (a probe, push-pulls of 400, 1,000 and 3,000 statements, a push, a
reconciliation turn of 500 records): the median of each.

    python scripts/bench_wire.py [--json] [--quick] [--codec]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipnode.config import MEMBERS_MAX_LIMIT, WireConfig
from gossipnode.core.membership import Alive, Ping, PushPull, Updates
from gossipnode.core.reconcile_messages import ReconcileTurn
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push
from gossipnode.identity import Identity
from gossipnode.runtime.listener import serve
from gossipnode.runtime.transport import ConnectionClosed, connect
from gossipnode.wire import cbor
from gossipnode.wire.channel import SecureChannel
from gossipnode.wire.handshake import Handshake
from gossipnode.wire.messages import MessageError, MessageRegistry
from gossipnode.wire.peer_messages import PEER_MESSAGES

SECRET = b"s" * 32
ALICE = Identity(nacl.signing.SigningKey(b"a" * 32))
BOB = Identity(nacl.signing.SigningKey(b"b" * 32))
CONFIG = WireConfig()
MB = 1_000_000


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes


@dataclass(frozen=True, slots=True)
class Done:
    count: int


REGISTRY = MessageRegistry()
REGISTRY.register(1, Blob)
REGISTRY.register(2, Done)


def bench_handshakes_in_process(count: int) -> float:
    """Handshakes per second with no I/O: the cryptography and codec alone."""
    started = time.perf_counter()
    for _ in range(count):
        left = Handshake.initiator(ALICE, (SECRET,), frame_bytes_max=CONFIG.frame_bytes_max)
        right = Handshake.responder(BOB, (SECRET,), frame_bytes_max=CONFIG.frame_bytes_max)
        right.receive_data(left.data_to_send())
        left.receive_data(right.data_to_send())
        right.receive_data(left.data_to_send())
        assert left.result is not None
        assert right.result is not None
    return count / (time.perf_counter() - started)


def bench_seal_open(size: int, count: int) -> float:
    """MB/s of seal + open in process (ChaCha20-Poly1305 plus framing)."""
    left = SecureChannel(b"\x01" * 32, b"\x02" * 32, CONFIG.frame_bytes_max)
    right = SecureChannel(b"\x02" * 32, b"\x01" * 32, CONFIG.frame_bytes_max)
    payload = b"x" * size
    started = time.perf_counter()
    for _ in range(count):
        right.receive_data(left.seal(payload))
        assert right.next_payload() is not None
    return size * count / MB / (time.perf_counter() - started)


async def sink(connection) -> None:
    """Receive Blobs until Done, then answer Done(count) so the sender can stop the clock."""
    received = 0
    try:
        while True:
            message = await connection.receive()
            if isinstance(message, Done):
                await connection.send(Done(received))
                received = 0
            else:
                received += 1
    except ConnectionClosed:
        pass


async def bench_loopback(handshakes: int, sizes: dict[int, int]) -> dict[str, float]:
    figures: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        address = await nursery.start(
            lambda task_status: serve(
                ("127.0.0.1", 0),
                BOB,
                (SECRET,),
                CONFIG,
                sink,
                registry=REGISTRY,
                task_status=task_status,
            )
        )
        started = time.perf_counter()
        for _ in range(handshakes):
            connection = await connect(address, ALICE, (SECRET,), CONFIG, registry=REGISTRY)
            await connection.aclose()
        figures["handshakes_per_s_loopback"] = handshakes / (time.perf_counter() - started)

        for size, count in sizes.items():
            connection = await connect(address, ALICE, (SECRET,), CONFIG, registry=REGISTRY)
            message = Blob(b"x" * size)
            started = time.perf_counter()
            for _ in range(count):
                await connection.send(message)
            await connection.send(Done(0))
            reply = await connection.receive()
            elapsed = time.perf_counter() - started
            assert reply == Done(count), reply
            figures[f"wire_mb_per_s_{size // 1024}k"] = size * count / MB / elapsed
            await connection.aclose()
        nursery.cancel_scope.cancel()

    for size, count in sizes.items():
        figures[f"raw_mb_per_s_{size // 1024}k"] = await bench_raw(size, count)
    return figures


async def bench_raw(size: int, count: int) -> float:
    """The same length-prefixed bytes over a plain loopback socket, read frame by frame."""
    frame = (size).to_bytes(4, "big") + b"x" * size
    total = len(frame) * count
    done = trio.Event()
    elapsed = 0.0

    async def receiver(stream) -> None:
        nonlocal elapsed
        received = 0
        while received < total:
            data = await stream.receive_some(256 * 1024)
            if not data:
                break
            received += len(data)
        await stream.send_all(b"!")
        done.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, receiver, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        started = time.perf_counter()
        for _ in range(count):
            await stream.send_all(frame)
        assert await stream.receive_some(1) == b"!"
        elapsed = time.perf_counter() - started
        await done.wait()
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return size * count / MB / elapsed


def statement(i: int) -> Alive:
    return Alive(i.to_bytes(32, "big"), f"node-{i}", "10.0.0.1", 7946, 1_700_000_000_000 + i,
                 (("dc", "east"), ("private_keys", "true")), bytes(64))


def over_count_push_pull(statements: int) -> bytes:
    """A push-pull of `statements` Alive statements, encoded by hand: the registry's encoder
    refuses more than MEMBERS_MAX_LIMIT, as it should."""
    alive = [[a.node_id, a.name, a.host, a.port, a.incarnation, [list(t) for t in a.tags],
              a.signature] for a in map(statement, range(statements))]
    return cbor.encode([PEER_MESSAGES.type_id(PushPull), True, [alive, [], [], []], [],
                        b"", b"", b""])


def valid_messages() -> dict[str, bytes]:
    origin = b"o" * 32
    value = cbor.encode({"cert": "x" * 1000, "n": 1})

    def records(count: int) -> tuple[Record, ...]:
        return tuple(Record("consumers", f"key-{i}", value, Version(1_700_000_000_000 + i, 0,
                                                                  origin))
                     for i in range(count))

    messages = {
        "probe": Ping(7, b"t" * 32, "10.0.0.2", 7946, Updates(alive=(statement(1),
                                                                     statement(2)))),
        "push_pull_400": PushPull(True, Updates(alive=tuple(map(statement, range(400))))),
        "push_pull_1000": PushPull(True, Updates(alive=tuple(map(statement, range(1000))))),
        # Over WALK_BYTES_MIN: the one valid message here whose every head is walked.
        "push_pull_3000": PushPull(True, Updates(alive=tuple(map(statement, range(3000))))),
        "push_20": Push(9, records(20)),
        "turn_500": ReconcileTurn(1, 3, True, b"", records(500)),
    }
    return {name: PEER_MESSAGES.encode(message) for name, message in messages.items()}


def cpu_median(run, rounds: int) -> float:
    """Median CPU seconds of `run()` over `rounds`."""
    times = []
    for _ in range(rounds):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return sorted(times)[len(times) // 2]


def bench_codec(rounds: int) -> dict[str, float]:
    """Declared-structure check off ("before") and on ("after"), interleaved."""
    figures: dict[str, float] = {}
    over = over_count_push_pull(5 * MEMBERS_MAX_LIMIT - 480)  # 20,000 statements, 2.9 MB

    def refuse() -> None:
        try:
            PEER_MESSAGES.decode(over)
        except MessageError:
            return
        raise AssertionError("an over-count push-pull was accepted")

    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        for check in (False, True):
            PEER_MESSAGES.check_heads = check
            samples.setdefault(check, []).append(cpu_median(refuse, 1))
    PEER_MESSAGES.check_heads = True
    for check, label in ((False, "before"), (True, "after")):
        figures[f"refuse_push_pull_20000_cpu_ms_{label}"] = (
            sorted(samples[check])[rounds // 2] * 1000)
    figures["refuse_push_pull_bytes"] = len(over)

    for name, data in valid_messages().items():
        repeat = max(1, 200_000 // len(data))
        decoded: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for check in (False, True):
                PEER_MESSAGES.check_heads = check
                decoded[check].append(cpu_median(
                    lambda data=data, repeat=repeat: [PEER_MESSAGES.decode(data)
                                                      for _ in range(repeat)], 1) / repeat)
        PEER_MESSAGES.check_heads = True
        before, after = (sorted(decoded[c])[rounds // 2] * 1e6 for c in (False, True))
        figures[f"decode_{name}_cpu_us_before"] = before
        figures[f"decode_{name}_cpu_us_after"] = after
        figures[f"decode_{name}_ratio"] = after / before
        figures[f"decode_{name}_bytes"] = len(data)
    return figures


def print_codec(figures: dict[str, float]) -> None:
    print(f"refuse a {figures['refuse_push_pull_bytes'] / MB:.1f} MB push-pull of 20,000 "
          f"statements: {figures['refuse_push_pull_20000_cpu_ms_before']} CPU ms before, "
          f"{figures['refuse_push_pull_20000_cpu_ms_after']} after")
    for name in ("probe", "push_pull_400", "push_pull_1000", "push_pull_3000", "push_20",
                 "turn_500"):
        print(f"decode {name} ({int(figures[f'decode_{name}_bytes'])} B): "
              f"{figures[f'decode_{name}_cpu_us_before']} CPU us before, "
              f"{figures[f'decode_{name}_cpu_us_after']} after "
              f"(x{figures[f'decode_{name}_ratio']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a tenth of the work (smoke run)")
    parser.add_argument("--codec", action="store_true",
                        help="only the declared-structure figures (no sockets)")
    arguments = parser.parse_args()
    scale = 10 if arguments.quick else 1
    codec = bench_codec(max(3, 15 // scale))
    codec = {name: round(value, 3) for name, value in codec.items()}
    if arguments.codec:
        if arguments.json:
            print(json.dumps(codec, indent=2, sort_keys=True))
        else:
            print_codec(codec)
        return
    handshakes = 500 // scale
    sizes = {1024: 50_000 // scale, 64 * 1024: 2_000 // scale}

    figures: dict[str, float] = {
        "handshakes_per_s_in_process": bench_handshakes_in_process(handshakes),
    }
    for size, count in sizes.items():
        figures[f"seal_open_mb_per_s_{size // 1024}k"] = bench_seal_open(size, count)
    figures.update(trio.run(bench_loopback, handshakes, sizes))
    figures = {name: round(value, 1) for name, value in figures.items()} | codec

    if arguments.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
        return
    print(f"handshakes/s, in process (crypto + codec) : {figures['handshakes_per_s_in_process']}")
    print(f"handshakes/s, loopback TCP (connect+close): {figures['handshakes_per_s_loopback']}")
    for size in sizes:
        k = size // 1024
        print(
            f"{k:>2} KiB messages: wire {figures[f'wire_mb_per_s_{k}k']} MB/s, "
            f"raw socket {figures[f'raw_mb_per_s_{k}k']} MB/s, "
            f"seal+open in process {figures[f'seal_open_mb_per_s_{k}k']} MB/s"
        )
    print_codec(codec)


if __name__ == "__main__":
    main()
