"""When the operator is ready, and when its JWKS is worth serving.

- Synced: kopf fills every index before it runs any resource handler, so the first
  namespace event a handler sees (`handlers.namespace_changed`) means the indexes hold the
  whole cluster: the keys the JWKS endpoint would serve are all there.
- Standing by: with peering, a replica that sees a live peer of higher priority pauses
  (kopf stops its watches: it never syncs while paused, and it may start paused without a
  word in its log). `watch_peers` reads kopf's peering object every few seconds and
  compares priorities. A standby is ready (a rollout must not wait for it to act) but has
  nothing trustworthy to serve: its JWKS endpoints answer 503.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger("jwtmesh.operator")
PEERS_EVERY = 3.0  # seconds between two reads of the peering object


def outranked(peers: Mapping[str, Any], priority: int, now: datetime) -> bool:
    """A live peer (kopf's `status` of the peering object) has a higher priority."""
    for info in peers.values():
        if not isinstance(info, Mapping):
            continue
        try:
            seen = datetime.fromisoformat(str(info["lastseen"]))
            alive = seen + timedelta(seconds=int(info.get("lifetime", 60))) > now
            if alive and int(info.get("priority", 0)) > priority:
                return True
        except (KeyError, TypeError, ValueError):
            continue
    return False


def _always() -> bool:
    return True


@dataclass
class Readiness:
    synced: bool = False
    standby: bool = False
    # A replica is Ready only once its injection webhook listens (always, without one): a
    # rollout that sent admission calls to a replica not yet listening refused Pods.
    webhook_listening: Callable[[], bool] = _always

    def problems(self) -> list[str]:
        """Why the operator is not ready (empty: ready)."""
        problems = []
        if not (self.synced or self.standby):
            problems.append("not synced yet: the indexes are still being filled from the API")
        if not self.webhook_listening():
            problems.append("the injection webhook is not listening yet")
        return problems

    def serving(self) -> str | None:
        """Why the JWKS endpoints have nothing trustworthy to serve (None: they do)."""
        if self.standby:  # paused: its indexes no longer follow the cluster
            return "standing by: another replica acts; ask again (the Service retries)"
        if not self.synced:
            return "not synced yet"
        return None


async def watch_peers(
    readiness: Readiness, priority: int, read_peers: Callable[[], Mapping[str, Any]]
) -> None:
    """Keep `readiness.standby` current until cancelled (`read_peers` runs in a thread)."""
    while True:
        try:
            peers = await asyncio.to_thread(read_peers)
            standby = outranked(peers, priority, datetime.now(UTC))
            if standby != readiness.standby:
                readiness.standby = standby
                log.info(
                    "standing by behind a peer" if standby else "acting (no peer outranks us)",
                    extra={"event": "standby" if standby else "acting"},
                )
        except Exception as exc:  # the API server's trouble: the next read tries again
            log.debug("could not read the peering object: %s", exc)
        await asyncio.sleep(PEERS_EVERY)
