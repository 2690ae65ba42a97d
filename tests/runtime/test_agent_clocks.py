"""The agent's two clocks: Trio's (monotonic, so MockClock drives it) for every timer, the
injected wall clock for version stamps only."""

import socket

import trio

from gossipnode.config import NodeConfig
from gossipnode.identity import create_identity, generate_secret
from gossipnode.runtime.agent import Agent
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import encode_value

DAY_MS = 24 * 3600 * 1000


class SteppedWallClock:
    """A wall clock that stands still until a test steps it."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_timers_follow_trio_clock_and_stamps_the_wall_clock(tmp_path, autojump_clock):
    wall = SteppedWallClock(1_800_000_000_000)
    config = NodeConfig(name="a", data_dir=tmp_path, listen=("127.0.0.1", free_port()))
    agent = Agent(config, create_identity(tmp_path / "identity.key"), (generate_secret(),),
                  SqliteStore(config.store_file), wall_ms=wall)
    value = encode_value({"members": []})
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda **kw: agent.run(handle_signals=False, **kw))
        first = await agent.write("groups", "a", value)
        assert first.version.wall_ms == wall.ms

        # An hour on the mock clock: the timers fire by it, while the wall clock stands
        # still; stamps then count up within the same wall millisecond.
        deadline = agent.core.next_deadline()
        assert trio.current_time() < deadline <= trio.current_time() + 3600
        await trio.sleep(3600)
        assert agent.core.next_deadline() > deadline
        second = await agent.write("groups", "b", value)
        assert (second.version.wall_ms, second.version.counter) == (wall.ms, 1)

        # The wall clock steps a day back, then two days on. Timers keep firing on Trio's
        # clock (none is stuck in the past or pushed a day out); stamps follow the hybrid
        # clock's rules (never backwards, the new wall time once it is ahead).
        expected = [(first.version.wall_ms, 2), (wall.ms + DAY_MS, 0)]
        for step_ms, (stamp_ms, counter) in zip((-DAY_MS, 2 * DAY_MS), expected, strict=True):
            wall.ms += step_ms
            await trio.sleep(600)
            assert trio.current_time() < agent.core.next_deadline() <= trio.current_time() + 3600
            record = await agent.write("groups", f"after{step_ms}", value)
            assert (record.version.wall_ms, record.version.counter) == (stamp_ms, counter)
        agent.stop()
