"""Kubernetes Events about our objects, posted from anywhere in the operator.

kopf's `kopf.info`/`kopf.warn` post only from inside a kopf handler (they need the
per-object context kopf sets up there); the scheduler's reconciles run outside any
handler, so there they raised LookupError. This recorder needs no context: `record`
puts the Event in a bounded queue and returns, one task posts them. Events are
advisory, as in Kubernetes' own recorder (which rate-limits and drops under load): when
the queue is full (a sweep of thousands of identities) the newest is dropped and
counted, and a failed post is logged, never retried, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("jwtmesh.operator.events")
COMPONENT = "jwtmesh-operator"
MAX_MESSAGE = 1024  # kopf's bound too: longer messages are cut in the middle
QUEUE_LIMIT = 1000

Post = Callable[[str, dict[str, Any]], Awaitable[None]]  # (namespace, Event body)


def event_body(
    obj: Any, type_: str, reason: str, message: str, now: datetime, instance: str
) -> dict[str, Any]:
    """A core/v1 Event about `obj` (a kopf body or a dict of the object), as kopf writes it."""
    meta = obj["metadata"]
    if len(message) > MAX_MESSAGE:
        half = MAX_MESSAGE // 2 - 2
        message = f"{message[:half]}...{message[-half:]}"
    stamp = now.isoformat()
    return {
        "metadata": {"namespace": meta["namespace"], "generateName": f"{meta['name']}."},
        "type": type_,
        "reason": reason,
        "message": message,
        "action": reason,
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "source": {"component": COMPONENT},
        "involvedObject": {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": stamp,
    }


class EventRecorder:
    def __init__(self, post: Post, limit: int = QUEUE_LIMIT) -> None:
        self._post = post
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None
        self._instance = socket.gethostname()
        self.posted = 0
        self.dropped = 0
        self.failed = 0

    def info(self, obj: Any, reason: str, message: str) -> None:
        self.record(obj, "Normal", reason, message)

    def warn(self, obj: Any, reason: str, message: str) -> None:
        self.record(obj, "Warning", reason, message)

    def record(self, obj: Any, type_: str, reason: str, message: str) -> None:
        """Queue one Event (never blocks, never raises; dropped when the queue is full)."""
        body = event_body(obj, type_, reason, message, datetime.now(UTC), self._instance)
        try:
            self._queue.put_nowait((body["metadata"]["namespace"], body))
        except asyncio.QueueFull:
            self.dropped += 1
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="events")

    async def drain(self) -> None:
        """Until every queued Event was posted (or failed)."""
        await self._queue.join()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            namespace, body = await self._queue.get()
            try:
                await self._post(namespace, body)
                self.posted += 1
            except Exception as exc:  # advisory: never stops the operator
                self.failed += 1
                log.warning(
                    "could not post Event %s for %s/%s: %s",
                    body["reason"],
                    namespace,
                    body["involvedObject"]["name"],
                    exc,
                    extra={"event": "event_post_failed"},
                )
            finally:
                self._queue.task_done()
