"""Watch events without `metadata.managedFields`, before kopf queues them.

When the operator starts over thousands of identities, kopf keeps every listed object (an
identity and its Secret each) in a worker of its own until every index is filled, and only
then runs a handler: at 10,000 identities, 20,000 parsed objects at once. managedFields is
often half of an object (the server-side-apply bookkeeping of every writer: the benchmark,
the operator's status patches, the API server) and nothing in this operator or in kopf's
event and index handlers reads it (latest.py drops it too).

kopf has no public hook between its watch stream and its workers, so this wraps the
function its queueing calls, `kopf._cogs.clients.watching.infinite_watch`, on the kopf
versions it was tested with (toggles.TESTED_KOPF); on any other, kopf's own stream runs
unchanged (correct, only heavier at a restart).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from kopf._cogs.clients import watching  # kopf's internals: pinned, and tested

from jwtmesh_operator.toggles import kopf_is_tested

log = logging.getLogger("jwtmesh.operator")


def slimmed(event: Any) -> Any:
    """The event with its object's managedFields dropped (in place); anything else as is."""
    if isinstance(event, dict):
        found = event.get("object")
        meta = found.get("metadata") if isinstance(found, dict) else None
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
    return event


def slim(stream: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """`stream`, each event slimmed as it comes."""

    async def slim_stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for event in stream(*args, **kwargs):
            yield slimmed(event)

    slim_stream.__wrapped__ = stream  # type: ignore[attr-defined]
    return slim_stream


def install(version: str | None = None) -> bool:
    """Slim every watch kopf starts from now on, where kopf is a tested version that still
    has the function; otherwise leave kopf's own. Logs which one runs."""
    tested, found = kopf_is_tested(version)
    original = getattr(watching, "infinite_watch", None)
    if not tested or not callable(original):
        log.warning("kopf %s: watch events keep their managedFields", found)
        return False
    if not hasattr(original, "__wrapped__"):
        watching.infinite_watch = slim(original)
    log.info("kopf %s: watch events are slimmed of managedFields", found)
    return True
