"""When the operator is ready, and when its JWKS is worth serving.

- Synced: kopf fills every index before it runs any resource handler, so the first
  namespace event a handler sees (`handlers.namespace_changed`) means the indexes hold the
  whole cluster: the keys the JWKS endpoint would serve are all there.
- Standing by (leader election): another replica holds the Lease and acts. This replica
  still watches and indexes everything, so it is ready and serves the JWKS and the
  injection webhook from current data; it only does not write.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Readiness:
    synced: bool = False
    standby: bool = False

    def problems(self) -> list[str]:
        """Why the operator is not ready (empty: ready)."""
        if self.synced:
            return []
        return ["not synced yet: the indexes are still being filled from the API server"]

    def serving(self) -> str | None:
        """Why the JWKS endpoints have nothing trustworthy to serve (None: they do)."""
        return None if self.synced else "not synced yet"
