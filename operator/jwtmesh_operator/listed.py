"""What one LIST found of the objects each identity's first reconcile after a start checks
once (its policy ConfigMap and NetworkPolicy), taken in place of a GET each.

After a start (or a take-over) every identity is reconciled once, and `policies_written`
is empty, so each reconcile would GET both objects: at 10,000 identities 20,000 requests,
most of a restart's time. A paged LIST of each kind answers the same question in a few
dozen requests. Pure: the caller passes the clock.

- An entry is taken once (the first reconcile of its identity; later ones GET, though by
  then `policies_written` usually says there is nothing to look at).
- A name the LIST did not find is known absent, once: a second reconcile GETs.
- Everything is forgotten KEEP_FOR after the LIST (an identity that never came).
A change between the LIST and the reconcile costs what one between a GET and the write
costs: the write carries the listed resourceVersion and conflicts, the next reconcile reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeAlias, TypeVar

Key: TypeAlias = tuple[str, str]  # (namespace, name)
Found = TypeVar("Found")

KEEP_FOR = 300.0  # seconds after the LIST


class ListedOnce(Generic[Found]):
    def __init__(self) -> None:
        self._found: dict[Key, Found] = {}
        self._taken: set[Key] = set()
        self._until = float("-inf")

    def __len__(self) -> int:
        return len(self._found)

    def fill(self, found: Mapping[Key, Found], now: float) -> None:
        """What a LIST complete over every namespace reconciled here found at `now`."""
        self._found, self._taken = dict(found), set()
        self._until = now + KEEP_FOR

    def take(self, key: Key, now: float) -> tuple[bool, Found | None]:
        """(known, object): known False means read the API; known True with None means
        the LIST found no such object."""
        if now > self._until:
            self._found.clear()
            self._taken.clear()
            return False, None
        if key in self._taken:
            return False, None
        self._taken.add(key)
        return True, self._found.pop(key, None)
