"""Envoy for the benchmarks: jwt_authn and jwtmesh filters, a direct_response upstream,
the keys, bundle and tokens every variant shares."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from jwtmesh.envoy_config import (
    AuthzEndpoint,
    EnvoyLimits,
    PodEnvoy,
    authz_cluster,
    connection_manager,
    ext_authz_filter,
    listener,
    overload_manager,
    socket_address,
)
from jwtmesh.tokens.keys import SigningKey, generate_signing_key, jwks
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, render_bundle
from jwtmesh_testing.processes import free_port

ISSUER = "https://jwtmesh.bench/ns/default/herald"
AUDIENCE = "census.default"
_JWT_AUTHN = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def jwt_authn_filter(key: SigningKey, cache: bool) -> dict[str, Any]:
    provider: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": json.dumps(jwks([key.public]))},
        "forward": True,
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 1000}
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": _JWT_AUTHN,
            "providers": {"herald": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "herald"}}],
        },
    }


def jwtmesh_filter(authz: AuthzEndpoint) -> dict[str, Any]:
    """The ext_authz filter an injected pod's inbound listener has, pointed at `authz`."""
    return ext_authz_filter(PodEnvoy(0, 0, 0, authz=authz), "/inbound")


def bundle_of(*keys: SigningKey) -> bytes:
    """A trust bundle in which ISSUER has exactly these keys."""
    return render_bundle(TrustBundle({ISSUER: IssuerTrust({k.kid: k.public for k in keys})}))


def signing_key_and_bundle(workdir: Path) -> tuple[SigningKey, Path]:
    """An ES256 key for ISSUER and a trust-bundle file in `workdir` that holds it."""
    key = generate_signing_key("ES256")
    bundle = workdir / "bundle.json"
    bundle.write_bytes(bundle_of(key))
    return key, bundle


def bench_token(key: SigningKey, lifetime: int = 3600) -> str:
    """A token from ISSUER for AUDIENCE; the default hour is longer than any run."""
    return mint_token(
        key,
        issuer=ISSUER,
        subject="herald.default",
        audience=AUDIENCE,
        now=time.time(),
        lifetime=lifetime,
    )


def bootstrap(
    listen: int, auth_filter: dict[str, Any] | None, authz: AuthzEndpoint | None
) -> dict[str, Any]:
    """Envoy with one listener whose only route is a `direct_response` 200."""
    hosts = [
        {
            "name": "all",
            "domains": ["*"],
            "routes": [
                {
                    "match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {"inline_string": "ok"}},
                }
            ],
        }
    ]
    manager = connection_manager("bench", hosts, auth_filter)
    return {
        "admin": {"address": socket_address("127.0.0.1", free_port())},
        "static_resources": {
            "listeners": [listener("bench", "127.0.0.1", listen, manager)],
            "clusters": [authz_cluster(authz)] if authz else [],
        },
        # The limits every injected Envoy runs with (timeouts, connection cap, heap).
        "overload_manager": overload_manager(EnvoyLimits()),
    }


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid`, to the nanosecond (the scheduler's own count in
    /proc/<pid>/task/*/schedstat): /proc/<pid>/stat counts in 10 ms ticks, which at 100
    req/s for 5 s is 20 µs per request. A thread that ends meanwhile is left out."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int(task.joinpath("schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1e9
