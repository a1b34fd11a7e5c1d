"""Prometheus metrics of the sidecar. Labels reuse the stable reason codes."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from jwtmesh_sidecar.watch import LoadOutcome


class SidecarMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.decisions = Counter(
            "jwtmesh_decisions",
            "Authorization decisions by result and reason code",
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
            "jwtmesh_bundle_reloads",
            "Trust bundle, policy and identity reloads by result",
            ["result"],
            registry=self.registry,
        )
        self.bundle_age = Gauge(
            "jwtmesh_bundle_age_seconds",
            "Seconds since the trust bundle in force last changed",
            registry=self.registry,
        )
        self.last_reload_failed = Gauge(
            "jwtmesh_bundle_last_reload_failed",
            "1 while the newest version of a watched file is unusable (last good kept)",
            registry=self.registry,
        )

    def record_load(self, outcome: LoadOutcome) -> None:
        self.reloads.labels("ok" if outcome.ok else "error").inc()
        self.last_reload_failed.set(0 if outcome.ok else 1)

    def track_bundle_age(self, changed_at: Callable[[], float]) -> None:
        self.bundle_age.set_function(lambda: time.time() - changed_at())
