"""Answers remembered by the request: each transport's fast lane.

The HTTP transport keys its memo on the request's exact bytes; the gRPC transport (on the
asyncio server) on `decide.input_key`, every field the decision reads, because each
CheckRequest also carries its own request id, time and source port.

Envoy's HTTP ext_authz request for one caller's token on one route is the same bytes each
time (the method, the prefixed path, the host and the few headers it is allowed to send).
At a steady rate each Check arrives alone to a process whose caches the other processes
on the core have refilled, and the full path (parse, verify from the cache, policy,
Decision, rendering) then costs the sidecar several times what it costs warm
(docs/performance.md, "Issue 14, 2026-11-27"). A repeated request is answered here from the
bytes it sent, with the bytes answered last time.

A request is remembered the second time it is allowed, not the first: most requests that
come once (a fresh token per call) never cost an entry.

Only what would be answered the same is remembered, and only while it would be:
- an allowed inbound decision (never a denial, whose log line and unknown-key refresh must
  happen each time, an audited one, or an egress token);
- while the Verifier and the policy in force are the very objects that decided it: a new
  bundle (a removed key, a new revocation) or policy is a new object, so every answer from
  before it is decided again (held by weak reference: a replaced one is freed, never kept);
- while the clock is between the moment it was decided and its `valid_until` (the token's
  expiry plus leeway, when the verified-token cache lets go of it too).

One memo per event loop: used from one thread, so no lock.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from jwtmesh_sidecar.decide import Decision

MAX_ENTRIES = 1024  # callers x routes of one service, with room to spare
MAX_REQUEST_BYTES = 4096  # a mesh token and Envoy's few headers take ~600


@dataclass(frozen=True, slots=True)
class Basis:
    """What a decision was made with, besides the request and the clock."""

    verifier: object
    policy: object


@dataclass(frozen=True, slots=True)
class Remembered:
    answer: bytes  # the wire answer, as sent the first time
    decision: Decision  # for the metrics of each repeat
    # Weak: an entry never keeps a replaced Verifier alive (with its whole bundle,
    # megabytes at thousands of issuers) after a reload.
    verifier: weakref.ref[object]
    policy: weakref.ref[object]
    decided_at: float
    valid_until: float


class AnswerMemo:
    """At most `max_entries` requests of at most MAX_REQUEST_BYTES, each remembered when it
    is allowed for the second time; the oldest goes first."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        self._entries: dict[Hashable, Remembered] = {}
        # Hashes of requests allowed once and not yet remembered: a request is remembered
        # when it is allowed a second time, so a stream of distinct tokens (each seen once)
        # keeps an int per request here instead of the request, its decision and its answer
        # (docs/performance.md, "Issue 14, 2026-11-27 (night)").
        self._seen_once: OrderedDict[int, None] = OrderedDict()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self, request: Hashable, now: float, verifier: object, policy: object
    ) -> Remembered | None:
        """The remembered answer to exactly this request (its bytes, or its key), if it
        still holds now with the Verifier and policy in force."""
        entry = self._entries.get(request)
        if entry is None:
            return None
        if (
            entry.verifier() is verifier
            and entry.policy() is policy
            and entry.decided_at <= now < entry.valid_until
        ):
            self.hits += 1
            return entry
        del self._entries[request]  # a new bundle or policy, expired, or the clock went back
        return None

    def put(
        self,
        request: Hashable,
        size: int,
        answer: bytes,
        decision: Decision,
        basis: Basis,
        decided_at: float,
    ) -> None:
        """`size`: the request's bytes on the wire, which bound what its key holds."""
        if (
            decision.valid_until is None
            or not decision.allowed
            or self._max_entries <= 0
            or size > MAX_REQUEST_BYTES
        ):
            return
        seen = hash(request)  # a collision only remembers a request one decision early
        if seen not in self._seen_once:
            self._seen_once[seen] = None
            if len(self._seen_once) > self._max_entries:
                self._seen_once.popitem(last=False)
            return
        del self._seen_once[seen]
        self._entries.pop(request, None)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[request] = Remembered(
            answer,
            decision,
            weakref.ref(basis.verifier),
            weakref.ref(basis.policy),
            decided_at,
            decision.valid_until,
        )
