"""Where a cache miss goes: one Check with a token the sidecar has not seen, split into
stages, timed in-process on the real code paths (no Envoy, no sockets).

    python bench/miss_split.py                 # ES256 and RS256 (2048 and 3072 bits)
    python bench/miss_split.py --tokens 2000 --repeat 7 --json bench/results/split.json

Each stage runs over the same N distinct tokens, N at a time, `--repeat` times; the
fastest pass is shown (the cost without interference from other work on the machine).

- transport in: the adapter turns the wire request into a CheckInput (HTTP:
  `parse_request` + `to_check_input`; gRPC: `CheckRequest.FromString` + `to_check_input`)
- parse: `extract_token` + `parse_token` (split, strict base64url, strict JSON)
- signature: `verify_signature`, the algorithm's own verify
- claims: `Verifier._verify_parsed` with the signature check replaced by `True`: header,
  issuer and key lookup, times, audience, sub/jti, grants, revocation, the VerifiedToken
- cache: the miss lookup and the insertion (its byte cost)
- policy: `evaluate` without rules (what `noPolicy` runs); the example policy below the table
- decision + shell: the allowed Decision (claims header, removals), the clock, metrics;
  what `DecisionService.check` costs beyond the stages above
- transport out: the adapter's answer (HTTP: `render_response`; gRPC: `to_check_response`
  + `SerializeToString`)

"end to end" times the whole adapter path (wire bytes in, wire bytes out) with a fresh
verifier per pass, so every Check is a miss; "sum" adds the rows, so the two agree when
the split accounts for the whole Check. What gRPC costs outside Python (HTTP/2 framing,
grpc's completion queue, thread wake-ups) is not here: `bench/dataplane.py` measures it
as the sidecar's whole CPU per check.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench_envoy import AUDIENCE, ISSUER, bench_token
from split_stages import Stack, build_stack, grpc_bytes, http_bytes

from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.verify import parse_token
from jwtmesh_sidecar.decide import TokenSettings, extract_token

ROWS = [
    "transport in",
    "parse",
    "signature",
    "claims",
    "cache",
    "policy",
    "decision + shell",
    "transport out",
]


def fastest(run: Callable[[], None], count: int, repeat: int) -> float:
    """µs per item of the fastest of `repeat` passes of `run` (which handles `count` items)."""
    passes = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        passes.append(time.perf_counter() - started)
    return min(passes) / count * 1e6


def each(function: Callable[[Any], object], items: list[Any]) -> Callable[[], None]:
    def run() -> None:
        for item in items:
            function(item)

    return run


def with_fresh_verifier(stack: Stack, run: Callable[[], None]) -> Callable[[], None]:
    """`run` after swapping in a new Verifier (an empty cache): every token is a miss."""

    def fresh() -> None:
        stack.renew_verifier()
        run()

    return fresh


def stage_times(stack: Stack, tokens: list[str], repeat: int) -> dict[str, dict[str, float]]:
    """µs per Check of each stage, per transport."""
    n, verifier = len(tokens), stack.verifier
    settings, most = TokenSettings(), verifier.settings.max_token_bytes
    wire = {"http": [http_bytes(t) for t in tokens], "grpc": [grpc_bytes(t) for t in tokens]}
    inputs = [stack.http_input(raw) for raw in wire["http"]]
    parsed = [parse_token(t, most) for t in tokens]
    verified = [verifier.verify_uncached(t, stack.now) for t in tokens]
    common = {
        "parse": fastest(
            each(lambda r: parse_token(extract_token(r.headers, settings), most), inputs), n, repeat
        ),
        "signature": fastest(each(stack.check_signature, parsed), n, repeat),
        "claims": fastest(stack.claims_pass(parsed), n, repeat),
        "cache": fastest(stack.cache_pass(tokens, verified), n, repeat),
        "policy": fastest(each(stack.evaluate_policy, verified), n, repeat),
    }
    check_all = with_fresh_verifier(stack, each(stack.service.check, inputs))
    shell = fastest(check_all, n, repeat) - sum(common.values())
    out: dict[str, dict[str, float]] = {}
    decisions = [stack.service.check(request) for request in inputs]
    for mode in ("http", "grpc"):
        adapter_in, adapter_out, whole = stack.adapter(mode)
        row = {
            "transport in": fastest(each(adapter_in, wire[mode]), n, repeat),
            **common,
            "decision + shell": shell,
            "transport out": fastest(each(adapter_out, decisions), n, repeat),
        }
        row["sum"] = sum(row.values())
        row["end to end"] = fastest(with_fresh_verifier(stack, each(whole, wire[mode])), n, repeat)
        out[mode] = row
    return out


def policy_with_rules(stack: Stack, verified: list[Any], repeat: int) -> float:
    """`evaluate` under examples/policies/lra-coordinator.yaml instead of no rules."""
    stack.use_example_policy()
    try:
        return fastest(each(stack.evaluate_policy, verified), len(verified), repeat)
    finally:
        stack.use_no_policy()


def measure(alg: str, bits: int, count: int, repeat: int) -> dict[str, Any]:
    key = generate_signing_key(alg, bits)
    stack = build_stack(key)
    tokens = [bench_token(key) for _ in range(count)]
    times = stage_times(stack, tokens, repeat)
    verified = [stack.verifier.verify_uncached(t, stack.now) for t in tokens]
    return {
        "alg": alg if alg != "RS256" else f"RS256/{bits}",
        "token_bytes": statistics.mean(len(t) for t in tokens),
        "us": times,
        "policy_example_us": policy_with_rules(stack, verified, repeat),
    }


def print_table(results: Iterable[dict[str, Any]]) -> None:
    results = list(results)
    columns = [(r["alg"], mode) for r in results for mode in ("http", "grpc")]
    print("µs per Check, cache miss".ljust(22) + "".join(f"{a + ' ' + m:>16}" for a, m in columns))
    for row in [*ROWS, "sum", "end to end"]:
        cells = "".join(f"{r['us'][m][row]:>16.1f}" for r in results for m in ("http", "grpc"))
        print(row.ljust(22) + cells)
    for r in results:
        print(
            f"{r['alg']}: policy under examples/policies/lra-coordinator.yaml "
            f"{r['policy_example_us']:.1f} µs (no rules: {r['us']['http']['policy']:.1f}); "
            f"token {r['token_bytes']:.0f} bytes"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = [
        measure(alg, bits, args.tokens, args.repeat)
        for alg, bits in (("ES256", 3072), ("RS256", 2048), ("RS256", 3072))
    ]
    print_table(results)
    if args.json is not None:
        document = {"date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), "results": results}
        args.json.write_text(json.dumps({**document, "issuer": ISSUER, "audience": AUDIENCE}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
