"""Prometheus metrics of the sidecar. Labels reuse the stable reason codes.

The one home of the sidecar's metric names and help texts; README.md and
docs/troubleshooting.md list the same names (tests/unit/test_docs.py compares them with
what /metrics serves).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from jwtmesh_sidecar.watch import LoadOutcome

SOURCES = ("bundle", "jwks", "policy", "identity")


class SidecarMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.decisions = Counter(
            "jwtmesh_decisions",
            "Authorization decisions by result (allow, deny) and reason code "
            "(docs/formats.md#reason-codes)",
            ["result", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "jwtmesh_decision_seconds",
            "Time to decide one Check, transport excluded",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
            registry=self.registry,
        )
        self.reloads = Counter(
            "jwtmesh_reloads",
            "Reads of a changed trust source, policy or signing-keys file, by source "
            "(bundle, jwks, policy, identity) and result (ok, error: the last good is kept)",
            ["source", "result"],
            registry=self.registry,
        )
        self.failing = Gauge(
            "jwtmesh_reload_failing",
            "1 while the newest version of a source is unusable (the last good one is in force)",
            ["source"],
            registry=self.registry,
        )
        self.bundle_age = Gauge(
            "jwtmesh_bundle_age_seconds",
            "Seconds since the trust bundle in force last changed",
            registry=self.registry,
        )
        for source in SOURCES:
            self.failing.labels(source).set(0)

    def loader(self, source: str) -> Callable[[LoadOutcome], None]:
        """The outcome callback for one kind of source (`trust`: bundle files and JWKS URLs)."""

        def record(outcome: LoadOutcome) -> None:
            kind = source
            if source == "trust":
                kind = "jwks" if outcome.path.startswith(("https://", "http://")) else "bundle"
            self.reloads.labels(kind, "ok" if outcome.ok else "error").inc()
            self.failing.labels(kind).set(0 if outcome.ok else 1)

        return record

    def track_bundle_age(self, changed_at: Callable[[], float]) -> None:
        self.bundle_age.set_function(lambda: time.time() - changed_at())
