"""The decisions over the indexes are recomputed after a change for whoever needs them as
of now, at most once per `max_stale` for the scheduler's reconciles (which accept them
that far behind), and once they are `max_age` old whatever happened."""

from __future__ import annotations

from collections.abc import Callable

from jwtmesh_operator.state import SourcesMemo


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting() -> tuple[list[int], Callable[[], int]]:
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    return calls, compute


def test_a_change_is_seen_at_once_by_a_caller_that_needs_the_decisions_as_of_now() -> None:
    clock = Clock()
    memo = SourcesMemo(max_age=1.0, clock=clock)
    calls, compute = counting()
    assert memo.get(compute) == 1
    assert memo.get(compute) == 1, "nothing changed: the same decisions"
    memo.invalidate()
    assert memo.get(compute) == 2
    assert len(calls) == 2


def test_a_burst_of_changes_costs_one_computation_per_max_stale_for_reconciles() -> None:
    clock = Clock()
    memo = SourcesMemo(max_age=1.0, clock=clock)
    calls, compute = counting()
    memo.get(compute, max_stale=0.5)
    for _ in range(100):  # a hundred events, each followed by a reconcile, within 0.4 s
        clock.now += 0.004
        memo.invalidate()
        memo.get(compute, max_stale=0.5)
    assert len(calls) == 1, "all within max_stale of the last computation"
    clock.now += 0.1
    memo.get(compute, max_stale=0.5)
    assert len(calls) == 2, "changed and max_stale passed: computed again"
    memo.get(compute, max_stale=0.5)
    assert len(calls) == 2, "no change since"


def test_decisions_older_than_max_age_are_recomputed_without_any_change() -> None:
    """Revocations expire with time, so the decisions do too."""
    clock = Clock()
    memo = SourcesMemo(max_age=1.0, clock=clock)
    calls, compute = counting()
    memo.get(compute, max_stale=5.0)
    clock.now += 1.5
    memo.get(compute, max_stale=5.0)
    assert len(calls) == 2


def test_stale_says_whether_anything_changed_since_the_last_computation() -> None:
    """A reconcile about to refuse an identity asks, and refuses only on fresh decisions."""
    memo = SourcesMemo(clock=Clock())
    _, compute = counting()
    memo.get(compute)
    assert not memo.stale
    memo.invalidate()
    assert memo.stale
    memo.get(compute, max_stale=10.0)
    assert memo.stale, "a stale-tolerant read leaves it stale"
    memo.get(compute)
    assert not memo.stale
