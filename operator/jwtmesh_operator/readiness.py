"""When the operator is ready, and when its JWKS is worth serving.

- Synced: kopf fills every index before it runs any resource handler, so the first
  namespace event a handler sees (`handlers.namespace_changed`) means the indexes hold the
  whole cluster: the keys the JWKS endpoint would serve are all there.
- Standing by (leader election): another replica holds the Lease and acts. This replica
  still watches and indexes everything, so it is ready and serves the JWKS and the
  injection webhook from current data; it only does not write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


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
        if not self.synced:
            problems.append("not synced yet: the indexes are still being filled from the API")
        if not self.webhook_listening():
            problems.append("the injection webhook is not listening yet")
        return problems

    def serving(self) -> str | None:
        """Why the JWKS endpoints have nothing trustworthy to serve (None: they do)."""
        return None if self.synced else "not synced yet"
