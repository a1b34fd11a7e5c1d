"""kopf's index wait with FastToggleSet: the same answers as kopf's ToggleSet, and a start
over thousands of objects (each making, dropping and waiting, as kopf's workers do) in
linear time instead of quadratic."""

from __future__ import annotations

import asyncio
import time

import pytest
from kopf._cogs.aiokits import aiotoggles

from jwtmesh_operator.toggles import FastToggleSet, install


@pytest.mark.parametrize("fn", [all, any], ids=["all", "any"])
def test_the_set_answers_as_kopfs_does(fn: object) -> None:
    async def states(kind: type) -> list[bool]:
        toggles = kind(fn)
        seen = [toggles.is_on()]
        first = await toggles.make_toggle(False)
        seen.append(toggles.is_on())
        second = await toggles.make_toggle(True)
        seen.append(toggles.is_on())
        await first.turn_to(True)
        seen.append(toggles.is_on())
        await second.turn_to(False)
        seen.append(toggles.is_on())
        await toggles.drop_toggle(second)
        seen.append(toggles.is_on())
        await toggles.drop_toggles([first])
        seen.append(toggles.is_on())
        return seen

    assert asyncio.run(states(FastToggleSet)) == asyncio.run(states(aiotoggles.ToggleSet))


def test_a_waiter_wakes_when_the_set_turns_and_not_before() -> None:
    async def scenario() -> None:
        toggles = FastToggleSet(all)
        first = await toggles.make_toggle(False)
        second = await toggles.make_toggle(False)
        waiter = asyncio.create_task(toggles.wait_for(True))
        await first.turn_to(True)
        await asyncio.sleep(0)
        assert not waiter.done(), "one toggle still off"
        await toggles.drop_toggle(second)
        await asyncio.wait_for(waiter, 1)
        await toggles.wait_for(True)  # already on: returns at once
        off = asyncio.create_task(toggles.wait_for(False))
        await toggles.make_toggle(False)
        await asyncio.wait_for(off, 1)

    asyncio.run(scenario())


def test_thousands_of_workers_start_in_linear_time() -> None:
    """As kopf's initial listing: a toggle per object, dropped once indexed, then each
    worker waits for the whole set. 8,000 objects took minutes with kopf's set."""

    async def scenario(count: int) -> float:
        toggles = FastToggleSet(all)
        indexed = await toggles.make_toggle(False)  # the listing of the resource kind

        async def worker(toggle: object) -> None:
            await toggles.drop_toggle(toggle)
            await toggles.wait_for(True)

        started = time.perf_counter()
        workers = []
        for _ in range(count):
            toggle = await toggles.make_toggle(False)
            workers.append(asyncio.create_task(worker(toggle)))
            await asyncio.sleep(0)
        await indexed.turn_to(True)
        await asyncio.wait_for(asyncio.gather(*workers), 30)
        return time.perf_counter() - started

    assert asyncio.run(scenario(8_000)) < 5.0


def test_install_puts_it_where_kopf_makes_its_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiotoggles, "ToggleSet", aiotoggles.ToggleSet)  # restored after
    assert install()
    assert aiotoggles.ToggleSet is FastToggleSet


def test_outside_the_tested_kopf_versions_kopfs_own_set_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fence's fallback: an untested kopf (or one without the set) keeps its own set."""
    original = aiotoggles.ToggleSet
    monkeypatch.setattr(aiotoggles, "ToggleSet", original)  # restored after
    assert not install("1.46.0")
    assert not install("2.0")
    assert not install("not-a-version")
    assert aiotoggles.ToggleSet is original
    monkeypatch.setattr(aiotoggles, "ToggleSet", None)
    assert not install("1.45.2")
