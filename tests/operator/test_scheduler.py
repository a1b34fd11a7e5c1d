"""One scheduler task for every identity: due ones run (bounded), each comes back when its
reconcile says, a failure retries, nothing runs while this replica does not act."""

from __future__ import annotations

import asyncio

from jwtmesh_operator.publication import Deferral
from jwtmesh_operator.scheduler import Key, Scheduler


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def test_due_identities_run_at_most_n_at_once_and_come_back_when_they_say() -> None:
    async def scenario() -> None:
        clock = Clock()
        running: list[Key] = []
        peak = 0
        release = asyncio.Event()

        async def reconcile(key: Key) -> float:
            nonlocal peak
            running.append(key)
            peak = max(peak, len(running))
            await release.wait()
            running.remove(key)
            return clock.now + 60

        scheduler = Scheduler(reconcile, concurrency=3, clock=clock)
        acting = asyncio.Event()
        acting.set()
        task = asyncio.get_running_loop().create_task(scheduler.run(acting))
        for n in range(10):
            scheduler.now(("ns", f"id{n}"))
        await settle()
        assert len(running) == 3, "three slots"
        assert scheduler.backlog() == 10, "three running, seven due"
        release.set()
        await settle(200)
        assert peak == 3
        assert scheduler.reconciles == 10
        assert len(scheduler) == 10, "each is due again in 60 s"
        assert scheduler.backlog() == 0, "steady: nothing due, nothing running"
        clock.now += 61
        assert scheduler.backlog() == 10, "all due again (the metric, before they run)"
        task.cancel()

    asyncio.run(scenario())


def test_nothing_runs_while_this_replica_does_not_act() -> None:
    async def scenario() -> None:
        calls: list[Key] = []

        async def reconcile(key: Key) -> float | None:
            calls.append(key)
            return None

        scheduler = Scheduler(reconcile, clock=Clock())
        acting = asyncio.Event()
        task = asyncio.get_running_loop().create_task(scheduler.run(acting))
        scheduler.now(("ns", "a"))
        await settle()
        assert calls == []
        acting.set()
        await settle()
        assert calls == [("ns", "a")]
        assert len(scheduler) == 0, "None forgets the identity"
        task.cancel()

    asyncio.run(scenario())


def test_a_failed_reconcile_is_retried_and_a_request_while_running_runs_once_more() -> None:
    async def scenario() -> None:
        clock = Clock()
        attempts = 0
        gate = asyncio.Event()

        async def reconcile(key: Key) -> float:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                await gate.wait()
                raise RuntimeError("API down")
            return clock.now + 3600

        scheduler = Scheduler(reconcile, retry_after=5, clock=clock)
        acting = asyncio.Event()
        acting.set()
        task = asyncio.get_running_loop().create_task(scheduler.run(acting))
        scheduler.now(("ns", "a"))
        await settle()
        scheduler.now(("ns", "a"))  # asked again while the first run is under way
        gate.set()
        await settle(100)
        assert attempts == 2, "the request made meanwhile ran at once, not after the retry delay"
        assert scheduler.failures == 1
        task.cancel()

    asyncio.run(scenario())


def test_a_deferral_moves_only_the_wake_up_it_names() -> None:
    """The publisher found a key written in time: the wake-up that would only have checked
    that goes on to `then`, unless the identity was asked for since, or its reconcile
    (running meanwhile) says another time."""

    async def scenario() -> None:
        clock = Clock()
        release = asyncio.Event()
        due = {key: 1010.0 for key in [("ns", "a"), ("ns", "b"), ("ns", "c"), ("ns", "d")]}

        async def reconcile(key: Key) -> float:
            if key in [("ns", "c"), ("ns", "d")]:
                await release.wait()
            return due[key]

        scheduler = Scheduler(reconcile, clock=clock)
        acting = asyncio.Event()
        acting.set()
        task = asyncio.get_running_loop().create_task(scheduler.run(acting))
        for key in due:
            scheduler.now(key)
        await settle()
        scheduler.now(("ns", "b"))  # asked for again (an event): due now, not at 1010
        scheduler.defer_all([(key, Deferral(check_at=1010.0, then=1020.0)) for key in due])
        assert scheduler.due_at(("ns", "a")) == 1020.0, "its check is skipped"
        assert scheduler.due_at(("ns", "b")) == 1000.0, "asked for since: not moved"
        due[("ns", "d")] = 1005.0  # its reconcile, running, finds something due sooner
        release.set()
        await settle()
        assert scheduler.due_at(("ns", "c")) == 1020.0, "was running: moved once it said 1010"
        assert scheduler.due_at(("ns", "d")) == 1005.0, "its reconcile said another time"
        task.cancel()

    asyncio.run(scenario())
