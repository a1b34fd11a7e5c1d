"""Events from outside kopf's handlers (the scheduler's reconciles): queued without any
kopf context, posted in order by one task; a full queue drops, a failed post is counted
and never raised."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from jwtmesh_operator.events import MAX_MESSAGE, EventRecorder, event_body

IDENTITY = {
    "apiVersion": "jwtmesh.io/v1alpha1",
    "kind": "ServiceIdentity",
    "metadata": {"namespace": "team-a", "name": "census", "uid": "u-1"},
}


def test_an_event_names_its_object_and_a_long_message_is_cut_in_the_middle() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    body = event_body(IDENTITY, "Warning", "SecretRepaired", "a" * 600 + "b" * 600, now, "op-0")
    assert body["metadata"] == {"namespace": "team-a", "generateName": "census."}
    assert body["involvedObject"] == {
        "apiVersion": "jwtmesh.io/v1alpha1",
        "kind": "ServiceIdentity",
        "name": "census",
        "namespace": "team-a",
        "uid": "u-1",
    }
    assert (body["type"], body["reason"]) == ("Warning", "SecretRepaired")
    assert len(body["message"]) <= MAX_MESSAGE
    assert body["message"].startswith("a")
    assert body["message"].endswith("b")
    assert "..." in body["message"]
    assert body["eventTime"] == body["lastTimestamp"] == now.isoformat()


def test_events_are_posted_in_order_from_a_plain_task() -> None:
    posted: list[tuple[str, str]] = []

    async def post(namespace: str, body: dict[str, Any]) -> None:
        posted.append((namespace, body["reason"]))

    async def scenario() -> None:
        recorder = EventRecorder(post)
        recorder.info(IDENTITY, "KeyCreated", "keys now [a]")
        recorder.warn(IDENTITY, "SecretRepaired", "private key replaced")
        await recorder.drain()
        await recorder.stop()
        assert recorder.posted == 2

    asyncio.run(scenario())
    assert posted == [("team-a", "KeyCreated"), ("team-a", "SecretRepaired")]


def test_a_full_queue_drops_and_a_failed_post_is_counted_not_raised() -> None:
    async def post(namespace: str, body: dict[str, Any]) -> None:
        raise OSError("API server unreachable")

    async def scenario() -> EventRecorder:
        recorder = EventRecorder(post, limit=2)
        for index in range(5):  # the task has not run yet: two fit, three are dropped
            recorder.info(IDENTITY, "KeyCreated", str(index))
        await recorder.drain()
        await recorder.stop()
        return recorder

    recorder = asyncio.run(scenario())
    assert (recorder.posted, recorder.failed, recorder.dropped) == (0, 2, 3)
