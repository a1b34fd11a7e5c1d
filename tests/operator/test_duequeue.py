"""One due-time queue for every identity: what is due pops in time order, rescheduling
replaces, and its memory follows the identities waiting, not the reschedules."""

from __future__ import annotations

import random

from jwtmesh_operator.duequeue import DueQueue


def test_due_keys_pop_in_time_order_and_only_when_due() -> None:
    queue: DueQueue[str] = DueQueue()
    for key, at in [("c", 30.0), ("a", 10.0), ("b", 20.0)]:
        queue.schedule(key, at)
    assert queue.next_due() == 10.0
    assert queue.pop_due(5.0) == []
    assert queue.pop_due(20.0) == ["a", "b"]
    assert queue.pop_due(100.0) == ["c"]
    assert queue.next_due() is None


def test_scheduling_again_replaces_the_earlier_time() -> None:
    queue: DueQueue[str] = DueQueue()
    queue.schedule("a", 10.0)
    queue.schedule("a", 50.0)
    assert queue.pop_due(20.0) == []
    assert queue.pop_due(50.0) == ["a"]


def test_earlier_only_never_postpones() -> None:
    queue: DueQueue[str] = DueQueue()
    queue.schedule("a", 10.0)
    queue.schedule("a", 50.0, earlier_only=True)
    assert queue.next_due() == 10.0
    queue.schedule("a", 5.0, earlier_only=True)
    assert queue.pop_due(6.0) == ["a"]


def test_a_forgotten_key_never_pops() -> None:
    queue: DueQueue[str] = DueQueue()
    queue.schedule("a", 1.0)
    queue.forget("a")
    assert "a" not in queue
    assert queue.pop_due(10.0) == []


def test_a_limit_leaves_the_rest_due() -> None:
    queue: DueQueue[int] = DueQueue()
    for key in range(10):
        queue.schedule(key, float(key))
    assert queue.pop_due(100.0, limit=3) == [0, 1, 2]
    assert len(queue) == 7


def test_memory_follows_the_waiting_keys_not_the_reschedules() -> None:
    """10,000 identities rescheduled 20 times each: the heap stays near one entry each."""
    rng = random.Random(7)
    queue: DueQueue[int] = DueQueue()
    for _ in range(20):
        for key in range(10_000):
            queue.schedule(key, rng.uniform(0, 1e6))
    assert len(queue) == 10_000
    assert len(queue._heap) <= 4 * 10_000 + 64
    popped = queue.pop_due(2e6)
    assert sorted(popped) == list(range(10_000))
