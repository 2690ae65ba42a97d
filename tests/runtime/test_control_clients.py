"""Control clients bounded per local user: the oldest idle one makes room (rule 5 of
runtime/control.py), so idle clients never lock an operator out."""

import trio

from gossipnode.runtime.control_clients import ControlClients

ALICE = (1000, "alice (uid 1000, pid 1)")
BOB = (1001, "bob (uid 1001, pid 2)")


async def test_the_oldest_idle_client_of_the_same_user_makes_room(autojump_clock):
    clients = ControlClients(total_max=4, per_user_max=2)
    first = clients.admit(ALICE)
    await trio.sleep(0.01)  # on the mock clock: no real wait, and the order is certain
    second = clients.admit(ALICE)
    third = clients.admit(ALICE)
    assert third is not None and first.scope.cancel_called and not second.scope.cancel_called
    assert len(clients) == 2 and clients.evicted == 1


async def test_busy_clients_are_never_closed_and_a_full_agent_evicts_the_heaviest_user():
    clients = ControlClients(total_max=3, per_user_max=3)
    busy = [clients.admit(ALICE) for _ in range(3)]
    for client in busy:
        client.idle = False
    assert clients.admit(BOB) is None  # every connection is mid-request: try again later
    busy[0].idle = True
    bob = clients.admit(BOB)
    assert bob is not None and busy[0].scope.cancel_called
    assert not any(c.scope.cancel_called for c in busy[1:])
