"""When each identity next needs attention: one due-time queue for all of them. Pure.

A heap of (due time, key) with lazy deletion: scheduling a key again replaces its earlier
entry (only the entry matching the key's current due time counts), so memory is one entry
per identity that is waiting plus the stale ones not yet popped, and nothing runs (no task,
no timer) for an identity until it is due. The operator's scheduler pops what is due, acts,
and sleeps until `next_due()`.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class DueQueue(Generic[K]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._counter = 0  # ties in time pop in scheduling order; keys never compare

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def schedule(self, key: K, at: float, *, earlier_only: bool = False) -> None:
        """Due at `at`; with `earlier_only`, only if that is sooner than already planned."""
        current = self._due.get(key)
        if current is not None and (current == at or (earlier_only and current <= at)):
            return
        self._due[key] = at
        self._counter += 1
        heapq.heappush(self._heap, (at, self._counter, key))
        if len(self._heap) > 4 * len(self._due) + 64:
            self._compact()

    def due_at(self, key: K) -> float | None:
        return self._due.get(key)

    def forget(self, key: K) -> None:
        self._due.pop(key, None)

    def count_due(self, now: float) -> int:
        """How many keys are due at `now` (O(keys): for metrics, not the hot path)."""
        return sum(1 for at in self._due.values() if at <= now)

    def next_due(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int | None = None) -> list[K]:
        """The keys due at `now` (at most `limit`), earliest first; they leave the queue."""
        due: list[K] = []
        while self._heap and (limit is None or len(due) < limit):
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                break
            _, _, key = heapq.heappop(self._heap)
            del self._due[key]
            due.append(key)
        return due

    def _drop_stale(self) -> None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._due.get(entry[2]) == entry[0]]
        heapq.heapify(self._heap)
