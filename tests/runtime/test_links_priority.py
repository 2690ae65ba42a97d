"""Probes never queue behind bulk data on an outbound link."""

from gossipnode.core.membership import Ping, Updates
from gossipnode.core.replication import Push
from gossipnode.runtime import links


async def test_a_probe_jumps_the_bulk_queue_and_a_full_bulk_queue_drops_the_link():
    link = links._Link(("127.0.0.1", 1), None)
    bulk = [Push.__new__(Push) for _ in range(links.LINK_QUEUE_MESSAGES_MAX)]
    for message in bulk:
        assert link.put(None, message)
    ping = Ping(1, b"\x01" * 32, "127.0.0.1", 2, Updates())
    assert link.put(None, ping)
    assert (await link.get())[1] is ping  # first, though queued last
    assert (await link.get())[1] is bulk[0]
    assert link.put(None, bulk[0])
    assert not link.put(None, bulk[1])  # bulk full: the caller closes the link
    for sequence in range(2 * links.URGENT_QUEUE_MESSAGES_MAX):  # urgent: bounded, oldest go
        link.put(None, Ping(sequence, b"\x01" * 32, "127.0.0.1", 2, Updates()))
    assert len(link.urgent) == links.URGENT_QUEUE_MESSAGES_MAX
    assert (await link.get())[1].sequence == links.URGENT_QUEUE_MESSAGES_MAX
