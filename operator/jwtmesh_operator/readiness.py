"""When the operator is ready, and when its JWKS is worth serving.

- Synced: kopf fills every index before it runs any resource handler, so the first
  namespace event a handler sees (`handlers.namespace_seen`) means the indexes hold the
  whole cluster: the keys the JWKS endpoint would serve are all there.
- Standing by: with peering, a replica that sees a peer of higher priority pauses (kopf
  stops its watches: it will never sync while paused) and logs it; `PeeringWatch` reads
  those lines. A standby is ready (a rollout must not wait for it to act) but has nothing
  trustworthy to serve: its JWKS endpoints answer 503.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

PEERING_LOGGER = "kopf._core.engines.peering"
_PAUSED = ("Pausing operations in favour of", "Pausing all operators")
_RESUMED = "Resuming operations"


class PeeringWatch(logging.Handler):
    """Follows kopf's pause and resume lines for this replica."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.standby = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(_PAUSED):
            self.standby = True
        elif message.startswith(_RESUMED):
            self.standby = False


def watch_peering() -> PeeringWatch:
    """Attach a PeeringWatch to kopf's peering logger (whatever the configured log level)."""
    watch = PeeringWatch()
    logger = logging.getLogger(PEERING_LOGGER)
    logger.setLevel(logging.INFO)
    logger.addHandler(watch)
    return watch


@dataclass
class Readiness:
    peering: PeeringWatch = field(default_factory=PeeringWatch)
    synced: bool = False

    def problems(self) -> list[str]:
        """Why the operator is not ready (empty: ready)."""
        if self.synced or self.peering.standby:
            return []
        return ["not synced yet: the indexes are still being filled from the API server"]

    def serving(self) -> str | None:
        """Why the JWKS endpoints have nothing trustworthy to serve (None: they do)."""
        if self.peering.standby:
            return "standing by: another replica acts; ask again (the Service retries)"
        if not self.synced:
            return "not synced yet"
        return None
