"""HTTP for verifiers outside the cluster and for the kubelet and Prometheus.

- `/.well-known/jwks.json`: every published key (kids are thumbprints, so they never clash);
- `<issuer path>/.well-known/openid-configuration` and `<issuer path>/jwks.json`: per issuer;
- `/healthz` (liveness), `/readyz` (ready once the indexes are filled), `/metrics`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from jwtmesh.tokens.keys import jwks
from jwtmesh_operator.publisher import BundleSources
from jwtmesh_operator.state import OperatorState


def _issuer_path(issuer: str) -> str:
    return urlsplit(issuer).path.rstrip("/")


def metrics_text(state: OperatorState) -> str:
    counters = state.counters
    bundle = state.publisher.last
    lines = [
        "# TYPE jwtmesh_operator_reconciles_total counter",
        f"jwtmesh_operator_reconciles_total {counters.reconciles}",
        "# TYPE jwtmesh_operator_reconcile_errors_total counter",
        f"jwtmesh_operator_reconcile_errors_total {counters.reconcile_errors}",
        "# TYPE jwtmesh_operator_keys_generated_total counter",
        f"jwtmesh_operator_keys_generated_total {counters.keys_generated}",
        "# TYPE jwtmesh_operator_bundle_publishes_total counter",
        f"jwtmesh_operator_bundle_publishes_total {state.publisher.publishes}",
        "# TYPE jwtmesh_operator_bundle_bytes gauge",
        f"jwtmesh_operator_bundle_bytes {len(bundle.data) if bundle else 0}",
    ]
    return "\n".join(lines) + "\n"


def make_app(state: OperatorState, sources: Callable[[], BundleSources | None]) -> web.Application:
    def current() -> BundleSources:
        found = sources()
        if found is None:
            raise web.HTTPServiceUnavailable(text="indexes not ready")
        return found

    def as_json(document: Any) -> web.Response:
        return web.Response(
            text=json.dumps(document),
            content_type="application/json",
            headers={"cache-control": "max-age=60"},
        )

    async def all_keys(_: web.Request) -> web.Response:
        keys = [key for issuer in current().published.values() for key in issuer.values()]
        return as_json(jwks(keys))

    async def per_issuer(request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"].rstrip("/")
        for issuer, keys in current().published.items():
            if _issuer_path(issuer) + "/jwks.json" == path:
                return as_json(jwks(list(keys.values())))
            if _issuer_path(issuer) + "/.well-known/openid-configuration" == path:
                return as_json(
                    {
                        "issuer": issuer,
                        "jwks_uri": f"{request.scheme}://{request.host}{_issuer_path(issuer)}/jwks.json",
                        "id_token_signing_alg_values_supported": sorted(
                            {k.alg for k in keys.values()}
                        ),
                    }
                )
        raise web.HTTPNotFound()

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        current()
        return web.Response(text="ok")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=metrics_text(state), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", all_keys)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/{path:.+}", per_issuer)
    return app
