"""The verified-token cache: token text → what verifying it proved, until it expires.

Bounded by bytes, not only entries: a token of at most 8 KiB can decode into claims that
hold 16 times that in Python objects (`{"x": [[], [], ...]}`), so each entry is charged
what it holds (`entry_cost`) against a byte budget, and a token whose claims are too big,
too many or too deep is not cached at all: it is verified again each time it comes (the
same answer, just not remembered). The oldest entries go first.

Shared by every thread that decides (the gRPC pollers and the HTTP event loop), so each
lookup and insertion holds a lock: a plain dict is not safe here, because evicting the
oldest entry iterates the dict while another thread may insert. The lock is held for dict
operations only, never while verifying or costing.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jwtmesh.tokens.verify import VerifiedToken

DEFAULT_CACHE_BYTES = 32 << 20  # well inside the injected sidecar's 256 MiB
MAX_ENTRY_BYTES = 64 << 10  # a bigger entry is verified each time instead
MAX_CLAIM_VALUES = 1024  # JSON values (objects, arrays, scalars) in one token's claims
MAX_CLAIM_DEPTH = 16  # nesting of objects and arrays
ENTRY_OVERHEAD = 512  # the VerifiedToken, its dict slot, the small strings it keeps


def claims_cost(claims: Mapping[str, Any]) -> int | None:
    """The bytes `claims` hold as Python objects (sys.getsizeof over the tree, each member
    name too), or None when the tree has more than MAX_CLAIM_VALUES values or nests
    deeper than MAX_CLAIM_DEPTH. Shared objects (small ints, interned strings) count
    every time, so the figure errs high. On every cache miss: kept cheap (~2 µs for a
    mesh token), containers only go on the stack, and a big array fails at once."""
    size = sys.getsizeof
    total = size(claims) + sum(map(size, claims))
    values = 1 + len(claims)
    stack: list[tuple[Iterable[Any], int]] = [(claims.values(), 2)]
    while stack:
        items, depth = stack.pop()
        for item in items:
            total += size(item)
            kind = type(item)
            if kind is dict or kind is list:
                values += len(item)
                if values > MAX_CLAIM_VALUES or depth > MAX_CLAIM_DEPTH:
                    return None
                if kind is dict:
                    total += sum(map(size, item))
                    stack.append((item.values(), depth + 1))
                else:
                    stack.append((item, depth + 1))
    return total if values <= MAX_CLAIM_VALUES else None


def entry_cost(token: str, claims: Mapping[str, Any]) -> int | None:
    """What caching `token` costs: its claims, the token text (the key), the base64url
    claims header computed once per entry (no longer than the token), and the entry
    itself. None: not cacheable (see `claims_cost`, MAX_ENTRY_BYTES)."""
    cost = claims_cost(claims)
    if cost is None:
        return None
    cost += 2 * sys.getsizeof(token) + ENTRY_OVERHEAD
    return cost if cost <= MAX_ENTRY_BYTES else None


class VerifiedTokenCache:
    """At most `max_entries` tokens and `max_bytes` of them (by `entry_cost`); the oldest
    goes first (dicts keep insertion order)."""

    def __init__(self, max_entries: int, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: dict[str, tuple[VerifiedToken, int]] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.uncacheable = 0  # verified, and too big or too complex to keep

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, now: float, leeway: float) -> VerifiedToken | None:
        """The cached result while the token is still within its lifetime (plus leeway)."""
        with self._lock:
            cached = self._entries.get(token)
            # The verifier's own expiry check (claims.check_times), so a cached success ends
            # at the same moment as an uncached one.
            if cached is not None and cached[0].expires_at > now - leeway:
                self.hits += 1
                return cached[0]
            if cached is not None:
                del self._entries[token]
                self.bytes -= cached[1]
            self.misses += 1
            return None

    def put(self, token: str, verified: VerifiedToken) -> None:
        if self._max_entries <= 0 or self._max_bytes <= 0:
            return
        cost = entry_cost(token, verified.claims)
        if cost is None or cost > self._max_bytes:
            with self._lock:
                self.uncacheable += 1
            return
        with self._lock:
            previous = self._entries.pop(token, None)
            if previous is not None:
                self.bytes -= previous[1]
            while self._entries and (
                len(self._entries) >= self._max_entries or self.bytes + cost > self._max_bytes
            ):
                _, oldest_cost = self._entries.pop(next(iter(self._entries)))
                self.bytes -= oldest_cost
            self._entries[token] = (verified, cost)
            self.bytes += cost
