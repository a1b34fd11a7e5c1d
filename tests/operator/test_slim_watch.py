"""Watch events reach kopf's workers without managedFields (slim_watch.py), on the kopf
versions that was tested with; on any other kopf's own stream runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.clients import watching

from jwtmesh_operator import slim_watch


def identity_event() -> dict[str, Any]:
    return {
        "type": "MODIFIED",
        "object": {
            "metadata": {
                "name": "census",
                "resourceVersion": "7",
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"algorithm": "ES256"},
        },
    }


def test_an_event_loses_managed_fields_only() -> None:
    event = slim_watch.slimmed(identity_event())
    assert event["object"]["metadata"] == {"name": "census", "resourceVersion": "7"}
    assert event["object"]["spec"] == {"algorithm": "ES256"}
    # Bookmarks, events without an object and odd shapes go through untouched.
    assert slim_watch.slimmed(watching.Bookmark.LISTED) is watching.Bookmark.LISTED
    assert slim_watch.slimmed({"type": "BOOKMARK"}) == {"type": "BOOKMARK"}
    assert slim_watch.slimmed({"object": "text"}) == {"object": "text"}


def test_the_wrapped_stream_yields_every_event_slimmed() -> None:
    async def stream(**_: Any) -> AsyncIterator[Any]:
        yield watching.Bookmark.LISTED
        yield identity_event()

    async def collect() -> list[Any]:
        return [event async for event in slim_watch.slim(stream)(settings=None)]

    events = asyncio.run(collect())
    assert events[0] is watching.Bookmark.LISTED
    assert "managedFields" not in events[1]["object"]["metadata"]


def test_install_wraps_what_kopfs_queueing_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    original = watching.infinite_watch
    monkeypatch.setattr(watching, "infinite_watch", original)
    assert slim_watch.install()
    assert watching.infinite_watch is not original
    assert watching.infinite_watch.__wrapped__ is original  # type: ignore[attr-defined]
    wrapped = watching.infinite_watch
    assert slim_watch.install()  # twice: still one wrapper
    assert watching.infinite_watch is wrapped


def test_outside_the_tested_kopf_versions_kopfs_own_stream_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = watching.infinite_watch
    monkeypatch.setattr(watching, "infinite_watch", original)
    assert not slim_watch.install("1.46.0")
    assert not slim_watch.install("not-a-version")
    assert watching.infinite_watch is original
    monkeypatch.delattr(watching, "infinite_watch")
    assert not slim_watch.install("1.45.2")  # a tested version that no longer has it
