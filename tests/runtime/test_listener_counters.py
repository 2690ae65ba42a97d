"""`info` and `metrics` show the listener's counters an operator could not see: connections
closed over `wire.connections_max` (listener.py rule 3) and replayed hellos answered from the
handshake reply cache (wire/handshake_cache.py)."""

import nacl.signing
import trio

from gossipnode.commands.status_verbs import parse_metrics
from gossipnode.config import NodeConfig, WireConfig
from gossipnode.identity import Identity, create_identity, generate_secret
from gossipnode.runtime.agent import Agent
from gossipnode.runtime.metrics import render_metrics
from gossipnode.runtime.status import info
from gossipnode.runtime.transport import connect
from gossipnode.storage import SqliteStore
from gossipnode.wire.handshake import Handshake
from tests.ports import free_ports

# Every wait in this test is bounded by this; none is expected to come near it.
TEST_TIMEOUT_S = 10


def fresh_identity(number: int) -> Identity:
    return Identity(nacl.signing.SigningKey(number.to_bytes(4, "big") * 8))


async def hello_reply(address: tuple[str, int], hello: bytes) -> bytes:
    """Send a recorded hello on a new connection and read the whole reply frame."""
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(hello)
        data = b""
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
            chunk = await stream.receive_some(4096)
            assert chunk, "the agent closed before its reply"
            data += chunk
        return data


def samples_named(text: str, name: str) -> list[dict]:
    return [s for s in parse_metrics(text) if s["name"] == name]


async def test_info_and_metrics_count_replayed_hellos_and_connections_over_the_limit(tmp_path):
    (port,) = free_ports(1)
    secret = generate_secret()
    config = NodeConfig(name="a", data_dir=tmp_path, listen=("127.0.0.1", port),
                        wire=WireConfig(connections_max=2))
    agent = Agent(config, create_identity(tmp_path / "identity.key"), (secret,),
                  SqliteStore(config.store_file))
    assert info(agent)["wire"]["hello_replays"] == 0
    assert info(agent)["wire"]["over_connection_limit"] == 0
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda **kw: agent.run(handle_signals=False, **kw))
        with trio.fail_after(TEST_TIMEOUT_S):
            hello = Handshake.initiator(fresh_identity(1), (secret,),
                                        frame_bytes_max=config.wire.frame_bytes_max
                                        ).data_to_send()
            first = await hello_reply(config.listen, hello)  # computed: not a replay
            assert agent.transport_status.hello_replays == 0
            assert await hello_reply(config.listen, hello) == first  # from the cache
            connections = [await connect(config.listen, fresh_identity(n), (secret,),
                                         config.wire) for n in (2, 3, 4)]
            for connection in connections:
                await connection.aclose()
        wire = info(agent)["wire"]
        text = render_metrics(agent)
        agent.stop()
    assert wire["hello_replays"] == 1
    assert wire["over_connection_limit"] == 1  # the third of three connections over two
    (replays,) = samples_named(text, "gossipnode_handshake_replays_total")
    assert replays["value"] == 1.0 and replays["labels"] == {}
    over = [s["value"] for s in samples_named(text, "gossipnode_messages_rejected_total")
            if s["labels"] == {"reason": "over_connection_limit"}]
    assert over == [1.0]
    assert "# TYPE gossipnode_handshake_replays_total counter" in text.splitlines()
