"""The virtual network's links: ordered reliable streams with bounded queues, bandwidth,
latency, resets, stalls, slowdowns and partitions (simulations/network.py)."""

import random

import pytest

from gossipnode.driving import DIAL_BACKOFF_S, LINK_QUEUE_BYTES_MAX, LINK_QUEUE_MESSAGES_MAX
from simulations.clock import EPOCH_S, EventQueue
from simulations.network import CALM, DIAL_TIMEOUT_S, Network, NetworkFaults


class Harness:
    """A network over nodes 0..n-1 and a log of what arrived and which ends were told
    their connection was lost."""

    def __init__(self, faults=CALM, seed=1, down=()):
        self.queue = EventQueue()
        self.down = set(down)
        self.lost: list[tuple[float, int, int]] = []
        self.network = Network(random.Random(seed), self.queue, lambda i: i not in self.down,
                               lambda i, peer, at: self.lost.append((at, i, peer)), faults)
        self.arrived: list[tuple[float, int, int, object]] = []
        self.stale = 0

    def advance(self, seconds):
        end = self.queue.now + seconds
        self.run(until_s=end - EPOCH_S)
        self.queue.advance_to(end)

    def run(self, until_s=60.0):
        while self.queue.next_time() is not None and self.queue.next_time() <= EPOCH_S + until_s:
            kind, payload = self.queue.pop()
            assert kind == "deliver"
            result = self.network.arrived(payload)
            if result is None:
                self.stale += 1
            else:
                source, target, message = result
                self.arrived.append((self.queue.now, source, target, message))

    def messages(self, source, target):
        return [m for _, s, t, m in self.arrived if (s, t) == (source, target)]


def test_messages_arrive_in_order_and_none_is_lost_despite_jitter():
    harness = Harness(NetworkFaults(latency_s=0.001, jitter_s=0.05))
    rng = random.Random(3)
    for number in range(200):
        harness.network.send(0, 1, number, rng.randrange(1, 5000))
        harness.network.send(1, 0, -number, 10)
        harness.advance(rng.random() * 0.01)
    harness.run()
    assert harness.messages(0, 1) == list(range(200))
    assert harness.messages(1, 0) == [-n for n in range(200)]
    times = [at for at, s, _, _ in harness.arrived if s == 0]
    assert times == sorted(times)
    assert harness.lost == []


def test_bandwidth_and_head_of_line_blocking():
    faults = NetworkFaults(latency_s=0.01, jitter_s=0.0, bandwidth_bytes_per_s=1000.0)
    harness = Harness(faults)
    harness.network.send(0, 1, "big", 5000)  # 5 s on the wire
    harness.network.send(0, 1, "small", 10)
    harness.network.send(1, 0, "other way", 10)  # not behind the big one
    harness.run()
    at = {message: time - EPOCH_S for time, _, _, message in harness.arrived}
    assert at["big"] == pytest.approx(5.0 + 0.01)
    assert at["small"] == pytest.approx(5.0 + 0.01 + 0.01)
    assert at["other way"] == pytest.approx(0.01 + 0.01)


def test_a_slow_link_multiplies_latency_and_divides_bandwidth():
    faults = NetworkFaults(latency_s=0.01, jitter_s=0.0, bandwidth_bytes_per_s=1000.0)
    harness = Harness(faults)
    harness.network.slow(1, 0, 10.0)
    harness.network.send(0, 1, "slow", 100)
    harness.network.send(0, 2, "normal", 100)
    harness.run()
    at = {message: time - EPOCH_S for time, _, _, message in harness.arrived}
    assert at["slow"] == pytest.approx(10 * (0.1 + 0.01))
    assert at["normal"] == pytest.approx(0.1 + 0.01)


def test_a_stalled_direction_holds_its_queue_and_flows_in_order_when_unstalled():
    harness = Harness()
    harness.network.send(0, 1, "first", 10)
    harness.network.stall(0, 1)
    for number in range(5):
        harness.network.send(0, 1, number, 10)
    harness.network.send(1, 0, "reply", 10)  # the other direction still flows
    harness.run()
    assert harness.messages(0, 1) == ["first"]
    assert harness.messages(1, 0) == ["reply"]
    harness.network.unstall(0, 1)
    harness.run()
    assert harness.messages(0, 1) == ["first", 0, 1, 2, 3, 4]
    assert harness.lost == []


def test_a_full_queue_resets_the_link_both_ends_see_it_and_the_queue_is_gone():
    harness = Harness()
    harness.network.stall(0, 1)
    for number in range(LINK_QUEUE_MESSAGES_MAX):
        harness.network.send(0, 1, number, 10)
    assert harness.network.resets == 0
    harness.network.send(0, 1, "one too many", 10)
    assert harness.network.overflows == 1
    assert harness.network.resets == 1
    assert sorted((i, peer) for _, i, peer in harness.lost) == [(0, 1), (1, 0)]
    harness.network.unstall(0, 1)
    harness.run()
    assert harness.messages(0, 1) == []
    harness.network.send(0, 1, "new connection", 10)  # the next send dials afresh
    harness.run()
    assert harness.messages(0, 1) == ["new connection"]
    assert harness.network.connections == 2


def test_a_queue_is_bounded_by_its_bytes_as_well_as_its_count():
    harness = Harness()
    harness.network.stall(0, 1)
    large = LINK_QUEUE_BYTES_MAX // 4
    for number in range(4):  # exactly the byte bound: far fewer messages than the count
        harness.network.send(0, 1, number, large)
    assert harness.network.resets == 0
    harness.network.send(0, 1, "one byte too many", 1)
    assert harness.network.overflows == 1 and harness.network.resets == 1
    assert sorted((i, peer) for _, i, peer in harness.lost) == [(0, 1), (1, 0)]
    # Delivered messages give their bytes back: a stream of large messages that never
    # piles up past the bound flows on forever.
    harness.network.unstall(0, 1)
    for number in range(12):
        harness.network.send(0, 1, number, large)
        harness.run()
    assert harness.messages(0, 1) == list(range(12))
    assert harness.network.overflows == 1


def test_a_cut_drops_what_is_in_flight_and_tells_both_ends():
    harness = Harness()
    harness.network.send(0, 1, "in flight", 10)
    harness.network.cut(1, 0)
    harness.run()
    assert harness.arrived == []
    assert harness.stale == 1
    assert sorted((i, peer) for _, i, peer in harness.lost) == [(0, 1), (1, 0)]


def test_a_dial_to_a_down_node_is_refused_after_a_round_trip_then_backs_off():
    faults = NetworkFaults(latency_s=0.01)
    harness = Harness(faults, down={1})
    harness.network.send(0, 1, "hello", 10)
    harness.network.send(0, 1, "again", 10)  # within the backoff: dropped, nobody told
    assert harness.lost == [(EPOCH_S + 0.02, 0, 1)]
    assert harness.network.dial_failures == 1
    assert harness.network.dropped_backoff == 1
    harness.down.clear()
    harness.advance(0.02 + DIAL_BACKOFF_S)
    harness.network.send(0, 1, "up now", 10)
    harness.run()
    assert harness.messages(0, 1) == ["up now"]


def test_a_partition_fails_new_dials_and_holds_open_links_until_the_heal():
    harness = Harness()
    harness.network.send(0, 1, "before", 10)  # dials 0-1 before the partition
    harness.network.partition([0], [1, 2])
    harness.network.send(0, 1, "during", 10)
    harness.network.send(1, 0, "back", 10)
    harness.network.send(0, 2, "no link yet", 10)
    assert harness.lost == [(EPOCH_S + DIAL_TIMEOUT_S, 0, 2)]
    harness.run(until_s=1.0)
    assert harness.messages(0, 1) == ["before"]  # in flight when the cut came: arrives
    assert harness.messages(1, 0) == []
    harness.network.heal()
    harness.run()
    assert harness.messages(0, 1) == ["before", "during"]
    assert harness.messages(1, 0) == ["back"]
    assert harness.messages(0, 2) == []


def test_a_oneway_partition_blocks_only_a_to_b_on_an_open_link():
    harness = Harness()
    harness.network.send(0, 1, "open", 10)
    harness.network.partition([0], [1], oneway=True)
    harness.network.send(0, 1, "blocked", 10)
    harness.network.send(1, 0, "flows", 10)
    harness.run()
    assert harness.messages(0, 1) == ["open"]
    assert harness.messages(1, 0) == ["flows"]


def test_a_crashed_node_resets_every_link_of_it():
    harness = Harness()
    for peer in (1, 2, 3):
        harness.network.send(0, peer, "hi", 10)
    harness.network.node_down(0)
    assert sorted((i, peer) for _, i, peer in harness.lost if i != 0) == [(1, 0), (2, 0),
                                                                          (3, 0)]
    harness.run()
    assert harness.arrived == []


def test_resets_happen_at_the_configured_rate_per_message():
    rate, sends = 0.05, 20_000
    harness = Harness(NetworkFaults(reset_rate=rate), seed=7)
    for _ in range(sends):
        harness.network.send(0, 1, "x", 10)
        harness.run()
    # Binomial standard deviation at 20,000 sends is 0.15 %; 1 % is over six of them.
    assert abs(harness.network.resets / sends - rate) < 0.01
    assert len(harness.arrived) == sends - harness.network.resets


def test_a_node_cannot_be_on_both_sides():
    with pytest.raises(AssertionError):
        Harness().network.partition([0, 1], [1, 2])
