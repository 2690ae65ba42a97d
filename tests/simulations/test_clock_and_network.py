"""The event queue and the virtual network's fault primitives."""

import random

import pytest

from simulations.clock import EPOCH_S, EventQueue
from simulations.network import Network, NetworkFaults


def test_queue_orders_by_time_then_push_order():
    queue = EventQueue()
    queue.push(EPOCH_S + 2, "b", 1)
    queue.push(EPOCH_S + 1, "a", 1)
    queue.push(EPOCH_S + 2, "b", 2)
    queue.push(EPOCH_S + 1, "a", 2)
    popped = [queue.pop() for _ in range(4)]
    assert popped == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    assert queue.now == EPOCH_S + 2


def test_queue_never_runs_an_event_in_the_past():
    queue = EventQueue()
    queue.push(EPOCH_S + 5, "later", None)
    queue.pop()
    queue.push(EPOCH_S + 1, "late", None)
    assert queue.next_time() == EPOCH_S + 5
    queue.pop()
    assert queue.now == EPOCH_S + 5


def test_two_way_partition_blocks_both_directions_and_heal_restores():
    network = Network(random.Random(1))
    network.partition([0, 1], [2, 3])
    assert network.route(0, 2) == []
    assert network.route(3, 1) == []
    assert len(network.route(0, 1)) == 1
    assert len(network.route(2, 3)) == 1
    network.heal()
    assert len(network.route(0, 2)) == 1
    assert len(network.route(3, 1)) == 1
    assert network.dropped_partitioned == 2


def test_oneway_partition_blocks_only_a_to_b():
    network = Network(random.Random(1))
    network.partition([0], [1], oneway=True)
    assert network.route(0, 1) == []
    assert len(network.route(1, 0)) == 1


def test_isolate_cuts_one_node_from_everyone():
    network = Network(random.Random(1))
    network.isolate(2)
    for other in (0, 1, 3):
        assert network.route(2, other) == []
        assert network.route(other, 2) == []
    assert len(network.route(0, 1)) == 1


def test_a_node_cannot_be_on_both_sides():
    with pytest.raises(AssertionError):
        Network(random.Random(1)).partition([0, 1], [1, 2])


SENDS = 20_000


@pytest.mark.parametrize(("field", "counter"), [
    ("loss_rate", "dropped_lost"),
    ("duplicate_rate", "duplicated"),
    ("reorder_rate", "reordered"),
])
def test_fault_rates_happen_at_the_configured_rate(field, counter):
    rate = 0.1
    network = Network(random.Random(7), NetworkFaults(**{field: rate}))
    copies = sum(len(network.route(0, 1)) for _ in range(SENDS))
    observed = getattr(network, counter) / SENDS
    # Binomial standard deviation at 20,000 sends is 0.2 %; 1 % is five of them.
    assert abs(observed - rate) < 0.01
    if field == "duplicate_rate":
        assert copies == SENDS + network.duplicated


def test_latency_and_jitter_bound_every_delay():
    faults = NetworkFaults(latency_s=0.01, jitter_s=0.005)
    network = Network(random.Random(3), faults)
    delays = [delay for _ in range(1000) for delay in network.route(0, 1)]
    assert min(delays) >= 0.01
    assert max(delays) <= 0.015
    assert max(delays) - min(delays) > 0.004  # the jitter is used, not just the base


def test_reordering_lets_later_messages_overtake():
    network = Network(random.Random(5), NetworkFaults(jitter_s=0.0, reorder_rate=0.3))
    arrivals = []
    for index in range(200):
        arrivals.extend(index * 0.01 + delay for delay in network.route(0, 1))
    assert arrivals != sorted(arrivals)
