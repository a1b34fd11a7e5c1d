"""Python's cyclic garbage collector on the heap of thousands of identities.

At 10,000 identities the operator holds millions of long-lived objects (kopf's indexes,
our records, keys and rendered shards). CPython's full collection walks every one of them,
and allocation-heavy work (a publish builds the bundle over every issuer) triggers
collections all the time: in a 10,000-identity rotation sweep the operator spent 70 of its
265 CPU seconds collecting (bench/controlplane.py, docs/scaling.md).

So every 30 seconds what survived is frozen (gc.freeze: out of the collector's sight, still
freed by reference counting when let go), after one collection of what is not frozen yet,
and the youngest generation is collected after more allocations than the default 700.
Every 20th time everything is thawed first, so a reference cycle that was alive when
frozen and died since is collected within ten minutes. `CollectorTime` counts the seconds
spent collecting (a metric), so the effect stays visible.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

log = logging.getLogger("jwtmesh.operator.collector")

YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)
FREEZE_EVERY = 30.0  # seconds: what survived since the last freeze is frozen too
THAW_EVERY = 20  # every 20th time everything is collected first (a cycle is not kept forever)


class CollectorTime:
    """Seconds spent in garbage collections since `install`, and how many ran."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._started = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections += 1


def freeze_long_lived(*, thaw: bool = False) -> int:
    """Collect what is not frozen (with `thaw`: everything), then freeze what survived;
    returns how many objects are frozen now."""
    if thaw:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()


async def keep_long_lived_frozen(every: float = FREEZE_EVERY, thaw_every: int = THAW_EVERY) -> None:
    """Freezes what survived, every `every` seconds: the heap grows after start-up
    (thousands of identities created, their keys), and what lives long should leave the
    collector's sight. Every `thaw_every`-th time everything is collected first."""
    rounds = 0
    while True:
        await asyncio.sleep(every)
        rounds += 1
        started = time.perf_counter()
        frozen = freeze_long_lived(thaw=rounds % thaw_every == 0)
        log.debug("%d objects frozen (%.3f s)", frozen, time.perf_counter() - started)
