"""Probes never queue behind bulk data on an outbound link: a drain of the queues takes
every probe first, then bulk messages up to the first record batch."""

from gossipnode.core.membership import Ping, Updates
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push, PushAck
from gossipnode.runtime import links

RECORD = Record("groups", "g", b"\xa0", Version(1, 0, b"\x02" * 32))


async def test_a_probe_jumps_the_bulk_queue_and_a_full_bulk_queue_drops_the_link():
    link = links._Link(("127.0.0.1", 1), None)
    bulk = [Push(n, (RECORD,)) for n in range(links.LINK_QUEUE_MESSAGES_MAX)]
    for message in bulk:
        assert link.put(None, message)
    ping = Ping(1, b"\x01" * 32, "127.0.0.1", 2, Updates())
    assert link.put(None, ping)
    assert [m for _, m in await link.get()] == [ping, bulk[0]]  # first, though queued last
    assert [m for _, m in await link.get()] == [bulk[1]]
    assert link.put(None, bulk[0])
    assert link.put(None, bulk[1])
    assert not link.put(None, bulk[2])  # bulk full: the caller closes the link
    for sequence in range(2 * links.URGENT_QUEUE_MESSAGES_MAX):  # urgent: bounded, oldest go
        link.put(None, Ping(sequence, b"\x01" * 32, "127.0.0.1", 2, Updates()))
    assert len(link.urgent) == links.URGENT_QUEUE_MESSAGES_MAX
    taken = [m for _, m in await link.get()]
    assert taken[0].sequence == links.URGENT_QUEUE_MESSAGES_MAX
    assert len(taken) == links.URGENT_QUEUE_MESSAGES_MAX + 1  # and one record batch


async def test_small_bulk_messages_are_taken_together_up_to_a_record_batch():
    link = links._Link(("127.0.0.1", 1), None)
    acks = [PushAck(n, ()) for n in range(5)]
    for message in [*acks, Push(9, (RECORD,)), PushAck(10, ())]:
        link.put(None, message)
    assert [m for _, m in await link.get()] == [*acks, Push(9, (RECORD,))]
    assert [m for _, m in await link.get()] == [PushAck(10, ())]
