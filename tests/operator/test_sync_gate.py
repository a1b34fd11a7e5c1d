"""Nothing is published or reconciled before every index is filled (handlers.publish,
handlers.reconcile_one). A Secret event from the operator's own watch, or the Lease taken at
start, can come while kopf is still filling its indexes: a bundle built then would hold part
of the identities and take the others' keys out of every Pod's trust."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from jwtmesh_operator import handlers
from jwtmesh_operator.readiness import Readiness


class Publisher:
    def __init__(self) -> None:
        self.requests = 0

    def request(self, _sources: Any) -> None:
        self.requests += 1


class Scheduler:
    def __init__(self) -> None:
        self.due: list[tuple[str, str]] = []

    def now(self, key: tuple[str, str]) -> None:
        self.due.append(key)


class Memo:
    def __init__(self) -> None:
        self.invalidated = 0

    def invalidate(self) -> None:
        self.invalidated += 1


def state(synced: bool) -> Any:
    return SimpleNamespace(
        readiness=Readiness(synced=synced),
        publisher=Publisher(),
        clock=lambda: 1000.0,
        sources_memo=Memo(),
        names_memo=Memo(),
        config=SimpleNamespace(bundle_label="jwtmesh.io/trust-bundle"),
        namespace_rotations={},
        identity_records={("team-a", "web"): None, ("team-b", "api"): None},
        scheduler=Scheduler(),
    )


def test_no_publish_before_the_indexes_are_filled() -> None:
    early = state(synced=False)
    handlers.publish(early)
    assert early.publisher.requests == 0
    ready = state(synced=True)
    handlers.publish(ready)
    assert ready.publisher.requests == 1


def test_the_sync_reconciles_and_publishes_what_was_held_back() -> None:
    early = state(synced=False)
    handlers.publish(early)
    asyncio.run(
        handlers.namespace_changed(name="default", labels={}, annotations={}, memo={"state": early})
    )
    assert early.readiness.synced
    assert early.scheduler.due == [("team-a", "web"), ("team-b", "api")]
    assert early.publisher.requests == 1
    assert early.sources_memo.invalidated == 1


def test_no_reconcile_before_the_indexes_are_filled() -> None:
    """Asked again soon, having read and decided nothing (the state has nothing else)."""
    early = state(synced=False)
    due = asyncio.run(handlers.reconcile_one(early, ("team-a", "web")))
    assert due == 1000.0 + handlers.STALE_OK
