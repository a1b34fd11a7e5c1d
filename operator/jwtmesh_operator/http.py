"""HTTP for verifiers outside the cluster and for the kubelet and Prometheus.

- `<issuer path>/.well-known/openid-configuration` and `<issuer path>/jwks.json`: per issuer,
  for issuers under the configured public URL only: the full issuer is that URL plus the
  request path, so an issuer of another origin is never served at a look-alike path, and
  `jwks_uri` is built from the configured URL, never from the request's Host header;
- `/healthz` (liveness), `/readyz` (ready once synced, or standing by: readiness.py,
  and once the injection webhook, if served, listens), `/metrics`. Every JWKS answer
  is 503 (never cached) while there is nothing trustworthy to serve: not synced yet,
  standing by, or no key published at all.

There is no merged `/.well-known/jwks.json` (404, saying why): a verifier that takes an
issuer's keys from a set holding every issuer's would accept any namespace's key for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from jwtmesh.shards import MAX_SHARDS, SHARD_LIMIT
from jwtmesh.tokens.keys import jwks
from jwtmesh_operator.headroom import restart_peak_estimate
from jwtmesh_operator.sources import BundleSources
from jwtmesh_operator.state import OperatorState


def discovery_document(issuer: str, algorithms: set[str]) -> dict[str, Any]:
    """OpenID Connect discovery for a verifier: where the keys are and what they sign."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks.json",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": sorted(algorithms),
    }


# The one home of the operator's metric names and help texts (README.md and
# docs/troubleshooting.md list the same; tests/unit/test_docs.py compares them).
METRICS: dict[str, tuple[str, str]] = {
    "jwtmesh_operator_reconciles_total": ("counter", "Identity reconciles that completed"),
    "jwtmesh_operator_reconcile_errors_total": (
        "counter",
        "Identity reconciles that failed (retried; the log line says why)",
    ),
    "jwtmesh_operator_keys_generated_total": ("counter", "Signing keys generated"),
    "jwtmesh_operator_bundle_publishes_total": (
        "counter",
        "Trust bundle publishes (one render written to every namespace that needs it)",
    ),
    "jwtmesh_operator_bundle_bytes": (
        "gauge",
        "Size of the last rendered trust bundle (as one document)",
    ),
    "jwtmesh_operator_bundle_limit_bytes": (
        "gauge",
        "The trust bundle's capacity, shards times the shard limit (not written beyond it)",
    ),
    "jwtmesh_operator_bundle_shards": ("gauge", "Shards the trust bundle is published in"),
    "jwtmesh_operator_bundle_written_bytes_total": (
        "counter",
        "Bytes of trust-bundle objects written (every namespace's copy; kept to the write rate)",
    ),
    "jwtmesh_operator_bundle_pending": (
        "gauge",
        "1 while a trust bundle publish is asked for or being written",
    ),
    "jwtmesh_operator_scheduler_backlog": (
        "gauge",
        "Identities due for a reconcile now or being reconciled (0 in steady state)",
    ),
    "jwtmesh_operator_api_requests_total": (
        "counter",
        "Requests the operator made to the API server, by verb and resource",
    ),
    "jwtmesh_operator_events_total": (
        "counter",
        "Kubernetes Events about identities, by result (posted; dropped: queue full; failed)",
    ),
    "jwtmesh_operator_gc_seconds_total": (
        "counter",
        "Seconds the operator spent in Python's garbage collector",
    ),
    "jwtmesh_operator_gc_collections_total": ("counter", "Garbage collections that ran"),
    "jwtmesh_operator_memory_limit_bytes": (
        "gauge",
        "This container's memory limit (0: none)",
    ),
    "jwtmesh_operator_restart_memory_estimate_bytes": (
        "gauge",
        "Memory a restart over the identities known now is expected to peak at",
    ),
    "jwtmesh_operator_synced": (
        "gauge",
        "1 once every index is filled from the API server (0 while starting or standing by)",
    ),
    "jwtmesh_operator_identity_ready": (
        "gauge",
        "1 while the identity's Ready condition is True, by namespace, name and reason",
    ),
    "jwtmesh_operator_identity_next_rotation_seconds": (
        "gauge",
        "Seconds until the identity's next key transition (negative: overdue)",
    ),
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def metrics_text(state: OperatorState) -> str:
    counters, bundle, now = state.counters, state.publisher.last, state.clock()
    values: dict[str, list[tuple[str, float]]] = {
        "jwtmesh_operator_reconciles_total": [("", counters.reconciles)],
        "jwtmesh_operator_reconcile_errors_total": [("", counters.reconcile_errors)],
        "jwtmesh_operator_keys_generated_total": [("", counters.keys_generated)],
        "jwtmesh_operator_bundle_publishes_total": [("", state.publisher.publishes)],
        "jwtmesh_operator_bundle_bytes": [("", bundle.total_bytes if bundle else 0)],
        "jwtmesh_operator_bundle_limit_bytes": [
            ("", bundle.capacity if bundle else MAX_SHARDS * SHARD_LIMIT)
        ],
        "jwtmesh_operator_bundle_shards": [("", bundle.count if bundle else 0)],
        "jwtmesh_operator_bundle_written_bytes_total": [("", state.publisher.bytes_written)],
        "jwtmesh_operator_bundle_pending": [("", 1 if state.publisher.pending else 0)],
        "jwtmesh_operator_scheduler_backlog": [("", state.scheduler.backlog())],
        "jwtmesh_operator_api_requests_total": [
            (f'{{verb="{verb}",resource="{resource}"}}', count)
            for (verb, resource), count in sorted(state.kube.requests.snapshot().items())
        ],
        "jwtmesh_operator_events_total": [
            ('{result="posted"}', state.events.posted),
            ('{result="dropped"}', state.events.dropped),
            ('{result="failed"}', state.events.failed),
        ],
        "jwtmesh_operator_gc_seconds_total": [("", round(state.collector.seconds, 6))],
        "jwtmesh_operator_gc_collections_total": [("", state.collector.collections)],
        "jwtmesh_operator_memory_limit_bytes": [("", state.memory_limit or 0)],
        "jwtmesh_operator_restart_memory_estimate_bytes": [
            ("", restart_peak_estimate(state.identities_known()))
        ],
        "jwtmesh_operator_synced": [("", 1 if state.readiness.synced else 0)],
        "jwtmesh_operator_identity_ready": [],
        "jwtmesh_operator_identity_next_rotation_seconds": [],
    }
    for (namespace, name), health in sorted(state.identities.items()):
        labels = f'{{namespace="{namespace}",name="{name}"'
        values["jwtmesh_operator_identity_ready"].append(
            (f'{labels},reason="{health.reason}"}}', 1 if health.ready else 0)
        )
        if health.next_rotation is not None:
            values["jwtmesh_operator_identity_next_rotation_seconds"].append(
                (labels + "}", round(health.next_rotation - now, 3))
            )
    lines = []
    for metric, (kind, help_text) in METRICS.items():
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
        lines += [f"{metric}{labels} {_number(value)}" for labels, value in values[metric]]
    return "\n".join(lines) + "\n"


MERGED_JWKS_REFUSED = (
    "keys are served per issuer: <issuer>/jwks.json (or its .well-known/openid-configuration);"
    " one set of every issuer's keys would let any namespace's key verify as any issuer\n"
)


def unavailable(reason: str) -> web.HTTPServiceUnavailable:
    """503 that no cache keeps: a verifier must ask again, never remember "no keys"."""
    return web.HTTPServiceUnavailable(
        text=reason + "\n", headers={"cache-control": "no-store", "retry-after": "5"}
    )


def make_app(state: OperatorState, sources: Callable[[], BundleSources | None]) -> web.Application:
    def current() -> BundleSources:
        reason = state.readiness.serving()
        found = sources() if reason is None else None
        if found is None:
            raise unavailable(reason or "indexes not ready")
        return found

    def as_json(document: Any) -> web.Response:
        return web.Response(
            text=json.dumps(document),
            content_type="application/json",
            headers={"cache-control": "max-age=60"},
        )

    async def no_merged_keys(_: web.Request) -> web.Response:
        raise web.HTTPNotFound(text=MERGED_JWKS_REFUSED)

    base = state.config.public_base_url

    async def per_issuer(request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        published = current().published
        for suffix in ("/jwks.json", "/.well-known/openid-configuration"):
            if not path.endswith(suffix):
                continue
            issuer = base + path[: -len(suffix)]
            keys = published.get(issuer)
            if keys is None:
                break
            if suffix == "/jwks.json":
                return as_json(jwks(list(keys.values())))
            return as_json(discovery_document(issuer, {key.alg for key in keys.values()}))
        raise web.HTTPNotFound()

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        problems = state.readiness.problems()
        if problems:
            raise unavailable("\n".join(problems))
        return web.Response(text="standby\n" if state.readiness.standby else "ready\n")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=metrics_text(state), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", no_merged_keys)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/{path:.+}", per_issuer)
    return app
