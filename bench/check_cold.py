"""One Check's Python cost warm (back to back, as at saturation) and cold (the CPU caches
filled with other data between Checks, as at a steady 1,000 req/s on a machine shared
with Envoy and the load generator, where the sidecar sleeps a millisecond between Checks).

    python bench/check_cold.py --checks 2000

In-process, the adapter's whole path (wire bytes in, wire bytes out) through the
DecisionService, for a token in the cache (hit) and a distinct token (miss, ES256); each
mode with its answer memo (a hit is then a memo hit) and without it. No
socket, so what it does not show is the kernel's part (epoll, recv, send, the wake-up) and
the server's loop; `bench/dataplane.py` measures those inside the sidecar's CPU per check.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_envoy import bench_token
from split_stages import Stack, build_stack, grpc_bytes, http_bytes

from jwtmesh.tokens.keys import generate_signing_key

EVICT_BYTES = 8 << 20  # larger than L2 and a share of L3 (2 MiB L2, 32 MiB L3 here)


def per_check(whole: Callable[[bytes], Any], wires: list[bytes], cold: bool) -> list[float]:
    """µs of each Check; with `cold`, another 8 MiB is written before each one."""
    other = bytearray(EVICT_BYTES)
    times = []
    for wire in wires:
        if cold:
            other[::64] = b"\x01" * (EVICT_BYTES // 64)
        started = time.perf_counter()
        whole(wire)
        times.append((time.perf_counter() - started) * 1e6)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[int(0.9 * len(ordered))],
        "mean": statistics.fmean(ordered),
    }


def measure(stack: Stack, tokens: list[str], valid: str) -> dict[str, dict[str, float]]:
    out = {}
    modes = (
        ("http", http_bytes),
        ("http-nomemo", http_bytes),
        ("grpc", grpc_bytes),
        ("grpc-nomemo", grpc_bytes),
    )
    for mode, wire_of in modes:
        _in, _out, whole = stack.adapter(mode)
        hits = [wire_of(valid)] * len(tokens)
        misses = [wire_of(token) for token in tokens]
        whole(hits[0])  # the valid token is in the cache from here on
        for cold in (False, True):
            label = "cold" if cold else "warm"
            out[f"{mode} hit {label}"] = summary(per_check(whole, hits, cold))
            stack.renew_verifier()
            whole(hits[0])
            out[f"{mode} miss {label}"] = summary(per_check(whole, misses, cold))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    key = generate_signing_key("ES256")
    stack = build_stack(key)
    tokens = [bench_token(key) for _ in range(args.checks)]
    figures = measure(stack, tokens, bench_token(key))
    print(f"{'µs per Check (ES256)':<22}{'median':>9}{'p90':>9}{'mean':>9}")
    for name, row in figures.items():
        print(f"{name:<22}{row['median']:>9.1f}{row['p90']:>9.1f}{row['mean']:>9.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"checks": args.checks, "us": figures}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
