"""The garbage collector on a large heap (collector.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from jwtmesh_operator.collector import YOUNG_THRESHOLD, CollectorTime, freeze_long_lived


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_what_survives_is_frozen_and_garbage_is_collected_first(restored_collector: None) -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self  # a reference cycle: only the collector frees it

    kept = [Node() for _ in range(1000)]
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage
    frozen = freeze_long_lived(thaw=True)
    assert frozen >= len(kept)
    assert gone() is None, "a cycle unreachable at the freeze is collected, not frozen"
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD


def test_a_thaw_returns_frozen_objects_to_the_collector(restored_collector: None) -> None:
    freeze_long_lived()
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_time_in_collections_is_counted() -> None:
    spent = CollectorTime()
    spent.install()
    try:
        gc.collect()
        gc.collect()
    finally:
        gc.callbacks.remove(spent._callback)
    assert spent.collections >= 2
    assert spent.seconds > 0
