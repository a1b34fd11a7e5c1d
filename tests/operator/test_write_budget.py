"""The trust bundle's write budget: a burst goes out at once, sustained writing waits."""

from __future__ import annotations

import pytest

from jwtmesh_operator.write_budget import WriteBudget


def test_writes_within_the_burst_never_wait() -> None:
    budget = WriteBudget(rate=1_000, burst=10_000)
    for now in (0.0, 0.1, 0.2):
        assert budget.wait(now) == 0.0
        budget.spend(3_000, now)
    assert budget.wait(0.3) == 0.0  # 9,000 spent, 300 refilled


def test_past_the_burst_the_next_publish_waits_for_what_is_owed() -> None:
    budget = WriteBudget(rate=1_000, burst=10_000)
    budget.spend(14_000, 0.0)
    assert budget.wait(0.0) == pytest.approx(4.0)
    assert budget.wait(1.0) == pytest.approx(3.0)
    assert budget.wait(4.0) == 0.0


def test_the_refill_stops_at_the_burst() -> None:
    budget = WriteBudget(rate=1_000, burst=10_000)
    budget.spend(10_000, 0.0)
    budget.spend(0, 3_600.0)  # an idle hour refills only up to the burst
    budget.spend(11_000, 3_600.0)
    assert budget.wait(3_600.0) == pytest.approx(1.0)


def test_without_a_burst_every_write_is_paid_before_the_next() -> None:
    budget = WriteBudget(rate=100_000, burst=0)
    budget.spend(50_000, 10.0)
    assert budget.wait(10.0) == pytest.approx(0.5)
