"""One task drives every identity: reconcile what is due, sleep until the next is due.

Replaces a kopf daemon per identity: an idle identity costs one entry in a DueQueue, no
task and no timer, and the scheduler wakes once per due time (or when an event asks for an
identity now), not once per identity. At most `concurrency` reconciles run at once; each
returns when its identity next needs attention, and a failed one is retried after
`retry_after` seconds. It acts only while `acting` is set (this replica holds the Lease).
Due identities are served in the order they fell due. (Namespaces taking turns instead,
tried on 2026-11-28, slowed a restart over 10,000 identities from 51.6 to 69.4 s to steady
state: the reconciles no longer followed the order the lists had filled the caches in.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias

from jwtmesh_operator.duequeue import DueQueue
from jwtmesh_operator.publication import Deferral

log = logging.getLogger("jwtmesh.operator.scheduler")
Key: TypeAlias = tuple[str, str]
Reconcile = Callable[[Key], Awaitable[float | None]]  # next due time; None: forget the key
MAX_SLEEP = 3600.0


class Scheduler:
    def __init__(
        self,
        reconcile: Reconcile,
        *,
        concurrency: int = 20,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._reconcile = reconcile
        self._concurrency = concurrency
        self._retry_after = retry_after
        self._clock = clock
        self._queue: DueQueue[Key] = DueQueue()
        self._running: set[Key] = set()
        self._again: set[Key] = set()  # asked for while running: once more right after
        self._deferred: dict[Key, Deferral] = {}  # deferred while running (defer)
        self._woken = asyncio.Event()
        self.reconciles = 0
        self.failures = 0

    def __len__(self) -> int:
        return len(self._queue)

    def backlog(self) -> int:
        """Identities due now or being reconciled: 0 once every one is done until later."""
        return len(self._running) + self._queue.count_due(self._clock())

    def now(self, key: Key) -> None:
        """Reconcile this identity as soon as a slot is free."""
        if key in self._running:
            self._again.add(key)
            return
        self._queue.schedule(key, self._clock(), earlier_only=True)
        self._woken.set()

    def now_all(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self.now(key)

    def due_at(self, key: Key) -> float | None:
        """When the identity is due (None: not queued, e.g. being reconciled)."""
        return self._queue.due_at(key)

    def defer(self, key: Key, check_at: float, then: float) -> None:
        """Due at `then` instead of `check_at`, if it is due at check_at (not asked for
        since); if it is being reconciled, once that reconcile says check_at."""
        if key in self._running:
            self._deferred[key] = Deferral(check_at, then)
        elif self._queue.due_at(key) == check_at:
            self._queue.schedule(key, then)

    def defer_all(self, deferrals: Iterable[tuple[Key, Deferral]]) -> None:
        for key, deferral in deferrals:
            self.defer(key, deferral.check_at, deferral.then)

    def forget(self, key: Key) -> None:
        self._queue.forget(key)
        self._again.discard(key)
        self._deferred.pop(key, None)

    async def run(self, acting: asyncio.Event) -> None:
        while True:
            await acting.wait()
            free = self._concurrency - len(self._running)
            for key in self._queue.pop_due(self._clock(), limit=free) if free > 0 else []:
                self._running.add(key)
                asyncio.get_running_loop().create_task(self._one(key), name=f"reconcile {key}")
            await self._sleep(full=len(self._running) >= self._concurrency)

    async def _sleep(self, *, full: bool) -> None:
        """Until the next due time, an identity asked for now, or (when every slot is busy)
        a reconcile finishing."""
        due = None if full else self._queue.next_due()
        delay = MAX_SLEEP if due is None else max(0.0, min(due - self._clock(), MAX_SLEEP))
        self._woken.clear()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout=delay)

    async def _one(self, key: Key) -> None:
        try:
            due = await self._reconcile(key)
        except Exception:
            self.failures += 1
            log.exception("reconciling %s/%s failed; retrying", *key)
            due = self._clock() + self._retry_after
        self.reconciles += 1
        self._running.discard(key)
        deferred = self._deferred.pop(key, None)
        if deferred is not None and due == deferred.check_at:
            due = deferred.then
        if key in self._again:
            self._again.discard(key)
            due = self._clock()
        if due is not None:
            self._queue.schedule(key, due)
        self._woken.set()
