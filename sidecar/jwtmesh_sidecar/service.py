"""The shell around the decision core that both transports call.

It reads the clock, records metrics, writes one JSON log line per denial, and never
raises: an internal error becomes a denial (fail closed).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any, TextIO

from jwtmesh import reasons
from jwtmesh.logs import log_line
from jwtmesh.policy import route_path
from jwtmesh_sidecar.answer_memo import AnswerMemo, Basis
from jwtmesh_sidecar.decide import (
    CheckInput,
    Decision,
    Egress,
    Inbound,
    decide_egress,
    decide_inbound,
    deny,
)
from jwtmesh_sidecar.metrics import SidecarMetrics

log = logging.getLogger("jwtmesh.sidecar")
DECISION_LOGGER = "jwtmesh.decision"
REQUEST_ID_HEADER = "x-request-id"  # Envoy's, on every request it asks about
_UNKNOWN_KEY = frozenset({reasons.UNKNOWN_KID.code, reasons.UNKNOWN_ISSUER.code})


class DecisionLog:
    """One JSON line per denial (and per audited would-deny), in the schema of every other
    line (`jwtmesh.logs`). Never the token. For a refused token, iss, sub, kid and jti are
    what it claims (`verified: false`)."""

    def __init__(self, stream: TextIO | None = None, least_level: str = "info") -> None:
        self._stream = stream or sys.stderr
        # Denials are info, internal errors error: logLevel warning or error keeps only those.
        self._info = least_level in ("debug", "info")

    def write(self, request: CheckInput, decision: Decision, now: float) -> None:
        level = "error" if decision.reason == reasons.INTERNAL_ERROR.code else "info"
        if level == "info" and not self._info:
            return
        line = log_line(
            level,
            "audit_would_deny" if decision.audited_denial else "denied",
            DECISION_LOGGER,
            decision.message,
            now,
            status=decision.status,
            reason=decision.reason,
            iss=decision.issuer,
            sub=decision.subject,
            kid=decision.kid,
            jti=decision.jti,
            verified=decision.verified if decision.issuer is not None else None,
            rule=decision.rule,
            method=request.method,
            path=route_path(request.path)[:512],
            host=request.host[:255],
            direction="egress" if request.egress else "inbound",
            request_id=request.headers.get(REQUEST_ID_HEADER, "")[:128] or None,
        )
        self._stream.write(line + "\n")
        self._stream.flush()


class DecisionService:
    def __init__(
        self,
        inbound: Inbound | None,
        egress: Egress | None,
        metrics: SidecarMetrics,
        decision_log: DecisionLog | None = None,
        clock: Callable[[], float] = time.time,
        on_unknown_key: Callable[[], None] = lambda: None,
    ) -> None:
        self._inbound = inbound
        self._on_unknown_key = on_unknown_key
        self._egress = egress
        self._metrics = metrics
        self._log = decision_log or DecisionLog()
        self._clock = clock
        self._counters: dict[tuple[str, str], Any] = {}

    def check(self, request: CheckInput) -> Decision:
        return self._check(request, self._clock())

    def _check(self, request: CheckInput, now: float) -> Decision:
        started = time.perf_counter()
        try:
            decision = self._decide(request, now)
        except Exception:
            log.exception(
                "internal error while deciding; failing closed", extra={"event": "internal_error"}
            )
            decision = deny(reasons.INTERNAL_ERROR, "the authorizer failed; the request is refused")
        self._record(decision, time.perf_counter() - started)
        if decision.reason in _UNKNOWN_KEY:
            # A rotation or a new identity may be on disk already: the trust store's poller
            # looks now, in the background; this request was answered from what is loaded.
            self._on_unknown_key()
        if not decision.allowed or decision.audited_denial:
            try:
                self._log.write(request, decision, now)
            except Exception:  # a broken log stream must not turn a decision into an error
                log.exception("could not write the decision log", extra={"event": "log_failed"})
        return decision

    def decide_and_remember(
        self,
        request: CheckInput,
        render: Callable[[Decision], bytes],
        memo: AnswerMemo,
        key: Hashable,
        size: int,
    ) -> bytes:
        """`check`, its answer as `render` puts it on the wire, remembered in `memo` under
        `key` (`size`: the request's bytes on the wire) if it may be given again. The
        Verifier and policy are taken before deciding, so a swap meanwhile makes the entry
        miss, never stale."""
        now = self._clock()
        basis = self._basis()
        decision = self._check(request, now)
        answer = render(decision)
        if basis is not None:
            memo.put(key, size, answer, decision, basis, now)
        return answer

    def answer_again(self, memo: AnswerMemo, request: Hashable) -> bytes | None:
        """The answer remembered for exactly this request (bytes or key) while it holds,
        counted in the metrics as a decision; None: decide (`decide_and_remember`)."""
        inbound = self._inbound
        if inbound is None:
            return None
        started = time.perf_counter()
        remembered = memo.get(request, self._clock(), inbound.get_verifier(), inbound.get_policy())
        if remembered is None:
            return None
        self._record(remembered.decision, time.perf_counter() - started)
        return remembered.answer

    def _basis(self) -> Basis | None:
        inbound = self._inbound
        if inbound is None:
            return None
        return Basis(inbound.get_verifier(), inbound.get_policy())

    def _decide(self, request: CheckInput, now: float) -> Decision:
        if request.egress:
            if self._egress is None:
                return deny(reasons.EGRESS_DISABLED, "this sidecar mints no outbound tokens")
            return decide_egress(request, self._egress, now)
        if self._inbound is None:
            return deny(reasons.INBOUND_DISABLED, "this sidecar verifies no inbound requests")
        return decide_inbound(request, self._inbound, now)

    def _record(self, decision: Decision, seconds: float) -> None:
        key = ("allow" if decision.allowed else "deny", decision.reason)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self._metrics.decisions.labels(*key)
        counter.inc()
        self._metrics.latency.observe(seconds)
