"""The verified-token cache: token text → what verifying it proved, until it expires.

Shared by every thread that decides (the gRPC pollers and the HTTP event loop), so each
lookup and insertion holds a lock: a plain dict is not safe here, because evicting the
oldest entry iterates the dict while another thread may insert. The lock is held for a
dict operation only, never while verifying.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jwtmesh.tokens.verify import VerifiedToken


class VerifiedTokenCache:
    """At most `max_entries` tokens; the oldest goes first (dicts keep insertion order)."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: dict[str, VerifiedToken] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, now: float, leeway: float) -> VerifiedToken | None:
        """The cached result while the token is still within its lifetime (plus leeway)."""
        with self._lock:
            cached = self._entries.get(token)
            # The verifier's own expiry check (claims.check_times), so a cached success ends
            # at the same moment as an uncached one.
            if cached is not None and cached.expires_at > now - leeway:
                self.hits += 1
                return cached
            if cached is not None:
                del self._entries[token]
            self.misses += 1
            return None

    def put(self, token: str, verified: VerifiedToken) -> None:
        if self._max_entries <= 0:
            return
        with self._lock:
            if token not in self._entries and len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[token] = verified
