"""What is due, taking turns by namespace: one tenant with thousands of identities due
cannot make another namespace's identity wait behind all of them. Pure.

Each group (the scheduler's: a namespace) keeps its own DueQueue, earliest first. Among
the groups with something due, each pop serves the next group in turn. So an identity due
now waits for at most one reconcile of each other namespace with something due, however
many each has: a flood of new RSA-4096 identities in one namespace (seconds of key
generation each) does not hold back another namespace's first key, rotation or
replacement of a compromised key.

A group's earliest due time is kept in a heap of hints, pushed when it gets earlier and
checked when read (a hint may be stale: its group rescheduled later, or forgotten), so
nothing is scanned per pop and idle groups cost one queue each.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from jwtmesh_operator.duequeue import DueQueue

K = TypeVar("K", bound=Hashable)
G = TypeVar("G", bound=Hashable)


class FairDueQueue(Generic[K, G]):
    def __init__(self, group: Callable[[K], G]) -> None:
        self._group = group
        self._queues: dict[G, DueQueue[K]] = {}
        self._hints: list[tuple[float, int, G]] = []  # (a group's earliest due, tie, group)
        self._counter = 0
        self._turns: deque[G] = deque()  # groups with something due, next served first
        self._in_turn: set[G] = set()

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def __contains__(self, key: object) -> bool:
        queue = self._queues.get(self._group(key))  # type: ignore[arg-type]
        return queue is not None and key in queue

    def schedule(self, key: K, at: float, *, earlier_only: bool = False) -> None:
        """Due at `at`; with `earlier_only`, only if that is sooner than already planned."""
        group = self._group(key)
        queue = self._queues.setdefault(group, DueQueue())
        before = queue.next_due()
        queue.schedule(key, at, earlier_only=earlier_only)
        head = queue.next_due()
        if head is not None and (before is None or head < before):
            self._hint(group, head)

    def due_at(self, key: K) -> float | None:
        queue = self._queues.get(self._group(key))
        return None if queue is None else queue.due_at(key)

    def forget(self, key: K) -> None:
        group = self._group(key)
        queue = self._queues.get(group)
        if queue is not None:
            queue.forget(key)
            if not queue:
                del self._queues[group]

    def count_due(self, now: float) -> int:
        """How many keys are due at `now` (O(keys): for metrics, not the hot path)."""
        return sum(queue.count_due(now) for queue in self._queues.values())

    def next_due(self) -> float | None:
        heads = [self._head(group) for group in self._turns]
        self._drop_stale_hints()
        if self._hints:
            heads.append(self._hints[0][0])
        known = [head for head in heads if head is not None]
        return min(known) if known else None

    def pop_due(self, now: float, limit: int | None = None) -> list[K]:
        """The keys due at `now` (at most `limit`), one per group in turn, each group's
        earliest first; they leave the queue."""
        self._admit(now)
        due: list[K] = []
        while self._turns and (limit is None or len(due) < limit):
            group = self._turns.popleft()
            self._in_turn.discard(group)
            queue = self._queues.get(group)
            popped = queue.pop_due(now, limit=1) if queue is not None else []
            due.extend(popped)
            self._place(group, now)
        return due

    def _admit(self, now: float) -> None:
        """Groups whose earliest key is due join the turns, at the back."""
        while self._hints and self._hints[0][0] <= now:
            _, _, group = heapq.heappop(self._hints)
            if group not in self._in_turn:
                self._place(group, now)

    def _place(self, group: G, now: float) -> None:
        """In turn if something of it is due, else hinted at its earliest; gone if empty."""
        head = self._head(group)
        if head is None:
            self._queues.pop(group, None)
        elif head <= now:
            self._turns.append(group)
            self._in_turn.add(group)
        else:
            self._hint(group, head)

    def _head(self, group: G) -> float | None:
        queue = self._queues.get(group)
        return None if queue is None else queue.next_due()

    def _hint(self, group: G, at: float) -> None:
        self._counter += 1
        heapq.heappush(self._hints, (at, self._counter, group))
        if len(self._hints) > 4 * len(self._queues) + 64:
            self._hints = [
                (head, tie, group)
                for tie, (group, head) in enumerate(
                    (group, self._head(group)) for group in self._queues
                )
                if head is not None and group not in self._in_turn
            ]
            heapq.heapify(self._hints)

    def _drop_stale_hints(self) -> None:
        """The top hint made true: its group is not in turn, exists, and is due then."""
        while self._hints:
            at, _, group = self._hints[0]
            head = None if group in self._in_turn else self._head(group)
            if head == at:
                return
            heapq.heappop(self._hints)
            if head is not None:
                self._hint(group, head)
