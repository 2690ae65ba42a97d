"""What the secure wire costs: handshakes per second and channel throughput over loopback.

Prints, for 1 KiB and 64 KiB messages, the MB/s of the full message path (encode, seal,
TCP, open, strict decode) next to the raw socket moving the same length-prefixed bytes,
and the in-process seal+open rate (crypto alone). Client and server run in one process on
127.0.0.1, so they share a CPU: treat the figures as a relative cost, not line rate.

    python scripts/bench_wire.py [--json] [--quick]
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

from gossipnode.config import WireConfig
from gossipnode.identity import Identity
from gossipnode.runtime.listener import serve
from gossipnode.runtime.transport import ConnectionClosed, connect
from gossipnode.wire.channel import SecureChannel
from gossipnode.wire.handshake import Handshake
from gossipnode.wire.messages import MessageRegistry

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a tenth of the work (smoke run)")
    arguments = parser.parse_args()
    scale = 10 if arguments.quick else 1
    handshakes = 500 // scale
    sizes = {1024: 50_000 // scale, 64 * 1024: 2_000 // scale}

    figures: dict[str, float] = {
        "handshakes_per_s_in_process": bench_handshakes_in_process(handshakes),
    }
    for size, count in sizes.items():
        figures[f"seal_open_mb_per_s_{size // 1024}k"] = bench_seal_open(size, count)
    figures.update(trio.run(bench_loopback, handshakes, sizes))
    figures = {name: round(value, 1) for name, value in figures.items()}

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


if __name__ == "__main__":
    main()
