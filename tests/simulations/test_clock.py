"""The event queue."""

from simulations.clock import EPOCH_S, EventQueue


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
