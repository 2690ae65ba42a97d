"""One connection per pair of nodes, carrying both directions (runtime/links.py rule 7):
two `Links` with their listeners on 127.0.0.1, in one Trio run, real sockets and
handshakes. Each side serves inbound connections as the agent does: it offers them to its
links while it delivers what arrives on them."""

import functools

import nacl.signing
import trio
import trio.lowlevel

from gossipnode.config import NodeConfig
from gossipnode.core.membership import Ping, Updates
from gossipnode.identity import Identity
from gossipnode.runtime.links import Links
from gossipnode.runtime.listener import serve
from gossipnode.runtime.transport import ConnectionClosed, TransportStatus

SECRET = b"s" * 32
# Every wait is bounded by this; none is expected to come near it.
TEST_TIMEOUT_S = 20
MESSAGES = 40


class Side:
    """One node: its links, its listener, what it received (sender, sequence) in order,
    and the inbound connections its listener authenticated."""

    def __init__(self, seed: bytes, tmp_path) -> None:
        self.identity = Identity(nacl.signing.SigningKey(seed))
        self.config = NodeConfig(name=seed.hex()[:4], data_dir=tmp_path,
                                 listen=("127.0.0.1", 0))
        self.status = TransportStatus()
        self.received: list[tuple[bytes, int]] = []
        self.inbound = []
        self.lost = []
        self.links = Links(self.config, self.identity, (SECRET,), self.deliver,
                           self.lost.append, self.status)
        self.address = None

    def deliver(self, peer, message):
        self.received.append((peer, message.sequence))

    async def handler(self, connection):
        self.inbound.append(connection)
        with self.links.offered(connection):
            try:
                while True:
                    self.deliver(connection.peer_id, await connection.receive())
            except ConnectionClosed:
                return

    async def start(self, nursery):
        await nursery.start(self.links.run)
        self.address = await nursery.start(lambda task_status: serve(
            self.config.listen, self.identity, (SECRET,), self.config.wire, self.handler,
            status=self.status, task_status=task_status))

    def send(self, other, sequence):
        ping = Ping(sequence, other.identity.node_id, "127.0.0.1", 1, Updates())
        self.links.enqueue(other.address, other.identity.node_id, ping)

    def link_to(self, other):
        return self.links._links.get(other.address)


async def wait_for(condition):
    while not condition():  # noqa: ASYNC110 - polling sockets' effects, no event to await
        await trio.sleep(0.01)


def open_connections(*sides):
    """Distinct open connections between the sides, seen from both ends."""
    ends = []
    for side in sides:
        ends += [c for c in side.inbound if c.close_reason is None]
        ends += [link.connection for link in side.links._links.values()
                 if link.dialled and link.connection is not None
                 and link.connection.close_reason is None]
    return ends


async def test_both_ends_dialling_at_once_keep_the_one_the_lower_id_dialled(tmp_path):
    a, b = Side(b"a" * 32, tmp_path / "a"), Side(b"b" * 32, tmp_path / "b")
    low, high = sorted((a, b), key=lambda side: side.identity.node_id)
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            await a.start(nursery)
            await b.start(nursery)
            a.send(b, 0)  # no checkpoint between: both dial before either connects
            b.send(a, 0)
            await wait_for(lambda: len(a.received) == 1 and len(b.received) == 1)
            # The higher end gave its own up and sends over the lower end's connection.
            await wait_for(lambda: high.link_to(low) is not None
                           and not high.link_to(low).dialled)
            assert low.link_to(high).dialled
            shared = low.link_to(high).connection
            assert high.link_to(low).connection in high.inbound
            assert high.link_to(low).connection.peer_id == low.identity.node_id
            await wait_for(lambda: len(open_connections(a, b)) == 2)  # its two ends
            assert low.inbound == [] or all(c.close_reason for c in low.inbound)

            for sequence in range(1, MESSAGES):
                a.send(b, sequence)
                b.send(a, sequence)
                if sequence % 7 == 0:
                    await trio.lowlevel.checkpoint()
            await wait_for(lambda: len(a.received) == MESSAGES == len(b.received))
            # Every message arrived once, in the order sent, each way.
            assert a.received == [(b.identity.node_id, n) for n in range(MESSAGES)]
            assert b.received == [(a.identity.node_id, n) for n in range(MESSAGES)]
            assert shared.close_reason is None
            assert low.lost == [] and high.lost == []  # a switch is not a lost link
            nursery.cancel_scope.cancel()


async def test_a_link_answers_over_the_peers_connection_without_dialling(tmp_path):
    a, b = Side(b"a" * 32, tmp_path / "a"), Side(b"b" * 32, tmp_path / "b")
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            await a.start(nursery)
            await b.start(nursery)
            a.send(b, 0)
            await wait_for(lambda: b.received)
            for sequence in range(MESSAGES):
                b.send(a, sequence)
            await wait_for(lambda: len(a.received) == MESSAGES)
            assert a.received == [(b.identity.node_id, n) for n in range(MESSAGES)]
            # One handshake in all: b never dialled a.
            assert (a.status.authenticated, b.status.authenticated) == (0, 1)
            assert b.links.dials_saved == 1
            assert b.link_to(a).connection is b.inbound[0]

            # a closes its link: b's link over that connection ends with it, and b's next
            # message dials a afresh.
            a.links.close(b.address)
            await wait_for(lambda: b.lost == [a.address])
            b.send(a, MESSAGES)
            await wait_for(lambda: len(a.received) == MESSAGES + 1)
            assert a.status.authenticated == 1
            nursery.cancel_scope.cancel()


async def test_a_dial_still_in_progress_yields_to_the_peers_completed_connection(tmp_path):
    # The lower end's dial hangs (its peer's address leads to a listener that accepts and
    # never answers); meanwhile the higher end dials and completes. The lower end cancels
    # its own handshake and sends over the higher end's connection: one handshake for the
    # pair, whichever id dialled, and the messages queued meanwhile arrive in order.
    a, b = Side(b"a" * 32, tmp_path / "a"), Side(b"b" * 32, tmp_path / "b")
    low, high = sorted((a, b), key=lambda side: side.identity.node_id)
    held = []

    async def hold(stream):
        held.append(stream)
        await trio.sleep_forever()

    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            (tarpit,) = await nursery.start(
                functools.partial(trio.serve_tcp, hold, 0, host="127.0.0.1"))
            tarpit_address = tarpit.socket.getsockname()[:2]
            await low.start(nursery)
            await high.start(nursery)
            low.links._dial[high.address] = tarpit_address
            for sequence in range(3):
                low.send(high, sequence)
            await wait_for(lambda: held)  # the lower end's dial is stuck in its handshake
            high.send(low, 0)
            await wait_for(lambda: len(high.received) == 3 and len(low.received) == 1)
            assert high.received == [(low.identity.node_id, n) for n in range(3)]
            assert low.links.dials_cancelled == 1 and low.links.dials_given_up == 0
            assert not low.link_to(high).dialled
            assert low.link_to(high).connection in low.inbound
            assert high.link_to(low).dialled
            assert (low.status.handshakes_completed, high.status.handshakes_completed) == (1, 1)
            assert len(open_connections(a, b)) == 2  # one connection, its two ends
            assert low.lost == [] and high.lost == []
            nursery.cancel_scope.cancel()
