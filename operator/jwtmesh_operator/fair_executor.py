"""Threads that run jobs in turns by group: one namespace's flood of RSA key generations
(up to seconds each) does not make another namespace's key wait behind all of it.

`submit(group, fn, *args)` returns a concurrent.futures.Future, as an Executor's would. A
group's jobs run in the order submitted; among the groups with jobs waiting, the threads
take one job of each in turn. So a key waits for at most one job of each other group with
work, however many each has queued (a plain ThreadPoolExecutor runs them first come,
first served: behind every key the scheduler's other reconcile slots had asked for).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeAlias, TypeVar

T = TypeVar("T")
_Job: TypeAlias = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...]]


class FairExecutor:
    def __init__(self, threads: int, name: str) -> None:
        self._ready = threading.Condition()
        self._jobs: dict[Hashable, deque[_Job]] = {}  # each group's jobs, oldest first
        self._turns: deque[Hashable] = deque()  # groups with jobs, next served first
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{index}", daemon=True)
            for index in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, group: Hashable, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("cannot submit after shutdown")
            jobs = self._jobs.get(group)
            if jobs is None:
                jobs = self._jobs[group] = deque()
                self._turns.append(group)
            jobs.append((future, fn, args))
            self._ready.notify()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more jobs; queued ones still run unless `cancel_futures`."""
        with self._ready:
            self._closed = True
            if cancel_futures:
                for jobs in self._jobs.values():
                    for future, _, _ in jobs:
                        future.cancel()
                self._jobs.clear()
                self._turns.clear()
            self._ready.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()

    def _next(self) -> _Job | None:
        """The next group's oldest job (None: shut down and nothing left)."""
        with self._ready:
            while not self._turns and not self._closed:
                self._ready.wait()
            if not self._turns:
                return None
            group = self._turns.popleft()
            jobs = self._jobs[group]
            job = jobs.popleft()
            if jobs:
                self._turns.append(group)
            else:
                del self._jobs[group]
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited (its reconcile gave up)
            try:
                result = fn(*args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
