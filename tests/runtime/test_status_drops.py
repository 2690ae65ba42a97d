"""`status` tells an operator why a would-be peer was dropped (here: a wrong secret).

On Trio's MockClock (autojump): the agent and the stranger share this Trio run over
loopback, so virtual time moves only while nothing is in flight (tests/runtime/
test_filtering.py says why that is sound)."""

import socket

import pytest
import trio

from gossipnode.config import NodeConfig
from gossipnode.identity import create_identity, generate_secret
from gossipnode.runtime.agent import Agent
from gossipnode.runtime.status import status
from gossipnode.runtime.transport import HandshakeFailed, connect
from gossipnode.storage import SqliteStore


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_status_lists_why_a_connection_was_dropped(tmp_path, autojump_clock):
    config = NodeConfig(name="a", data_dir=tmp_path, listen=("127.0.0.1", free_port()))
    agent = Agent(config, create_identity(tmp_path / "identity.key"), (generate_secret(),),
                  SqliteStore(config.store_file))
    stranger = create_identity(tmp_path / "stranger.key")
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda **kw: agent.run(handle_signals=False, **kw))
        with pytest.raises(HandshakeFailed, match="wrong cluster secret"):
            await connect(config.listen, stranger, (generate_secret(),), config.wire)
        with trio.fail_after(10):
            while not status(agent)["connection_drops"]:  # noqa: ASYNC110 - polling a view
                await trio.sleep(0.05)
        drops = status(agent)["connection_drops"]
        assert any("wrong cluster secret" in drop["reason"] for drop in drops), drops
        agent.stop()


async def test_metrics_list_every_kind_of_drop(tmp_path):
    """Two kinds of drop at once (a wrong secret and a timeout): `metrics` lists both."""
    from gossipnode.runtime.metrics import render_metrics

    config = NodeConfig(name="a", data_dir=tmp_path, listen=("127.0.0.1", free_port()))
    agent = Agent(config, create_identity(tmp_path / "identity.key"), (generate_secret(),),
                  SqliteStore(config.store_file))
    agent.transport_status.record_drop("10.0.0.1:1", "handshake failed: wrong cluster secret")
    agent.transport_status.record_drop("10.0.0.2:2", "handshake timeout after 5.0 s")
    text = render_metrics(agent)
    assert 'gossipnode_connection_drops_total{kind="wrong_secret"} 1' in text
    assert 'gossipnode_connection_drops_total{kind="handshake_timeout"} 1' in text
    agent.store.close()
