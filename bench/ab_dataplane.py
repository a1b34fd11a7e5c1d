"""A/B of the data plane: this checkout against a git ref, in one interleaved run.

On a shared machine, two separate `bench/dataplane.py` runs minutes apart differ by more
than the effect being measured. Here both sides run at once and take turns: each pair
(Envoy alone, jwtmesh over gRPC, jwtmesh over HTTP; base then new, new then base in the
next round) runs back to back, so drift hits both alike; each round gives a ratio per
pair, and the median of those ratios is the result. `--split` adds the mixed pairs
(the new sidecar behind the base Envoy configuration and the reverse), so a change
splits into what the sidecar changed and what the Envoy configuration changed.

    python bench/ab_dataplane.py --baseline-ref 6467d7f --seconds 5 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench_envoy as bench
import bench_wrk

from jwtmesh_testing.processes import (
    ManagedProcess,
    free_port,
    start_envoy,
    wait_for_port,
)

HERE = Path(__file__).resolve().parents[1]
RENDER = """
import json, sys
sys.path.insert(0, "bench")
try:  # the bench's Envoy helpers: bench_envoy since the bench was split, dataplane before
    import bench_envoy as dataplane
except ImportError:
    import dataplane
from jwtmesh.envoy_config import AuthzEndpoint
listen, mode, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if mode == "none":
    print(json.dumps(dataplane.bootstrap(listen, None, None)))
else:
    authz = AuthzEndpoint(mode, port=port)
    print(json.dumps(dataplane.bootstrap(listen, dataplane.jwtmesh_filter(authz), authz)))
"""


def checkout(ref: str) -> Path:
    """The tree of `ref` in a temporary directory (git archive: no worktree is touched)."""
    target = Path(tempfile.mkdtemp(prefix="jwtmesh-ab-"))
    archive = subprocess.run(["git", "archive", ref], cwd=HERE, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def pythonpath(tree: Path) -> str:
    return os.pathsep.join(str(tree / room) for room in ("core", "sidecar", "testing"))


def render(tree: Path, listen: int, mode: str, port: int) -> dict[str, Any]:
    """An Envoy bootstrap as `tree`'s bench renders it."""
    out = subprocess.run(
        [sys.executable, "-c", RENDER, str(listen), mode, str(port)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": pythonpath(tree)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    config: dict[str, Any] = json.loads(out)
    return config


def sidecar_config(grpc_port: int, http_port: int, bundle: Path) -> dict[str, Any]:
    """Both sides' sidecar configuration (tests/unit/test_bench_configs.py loads it)."""
    return {
        "identity": bench.AUDIENCE,
        "listen": {"grpc": f"127.0.0.1:{grpc_port}", "http": f"127.0.0.1:{http_port}"},
        "trust": {"bundleFiles": [str(bundle)]},
        "noPolicy": True,  # as bench/dataplane.py: every verified caller in (a ref before
        # the strict configuration, issue 16, refuses this key: compare with refs after it)
        "verification": {"cacheSize": 10_000},
    }


def start_sidecar(tree: Path, workdir: Path, bundle: Path, name: str) -> tuple[Any, int, int]:
    """`tree`'s sidecar (gRPC and HTTP); returns it and its two ports."""
    grpc_port, http_port = free_port(), free_port()
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(sidecar_config(grpc_port, http_port, bundle)))
    argv = [sys.executable, "-m", "jwtmesh_sidecar.cli", "sidecar", "--config", str(path)]
    process = ManagedProcess(
        name, argv, workdir / f"{name}.log", env={"PYTHONPATH": pythonpath(tree)}
    )
    wait_for_port(grpc_port, 30, process)
    return process, grpc_port, http_port


def arguments() -> Any:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-ref", required=True)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--split", action="store_true", help="also the mixed pairs")
    parser.add_argument(
        "--workloads",
        default="valid,mixed_10pct_invalid,distinct_tokens",
        help="comma-separated, of: valid, mixed_10pct_invalid, distinct_tokens",
    )
    return parser.parse_args()


@dataclass
class Stack:
    """Every variant's Envoy, by name: its port and the sidecar it asks (if any)."""

    processes: list[ManagedProcess] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    sidecar_of: dict[str, ManagedProcess] = field(default_factory=dict)


def start_stack(trees: dict[str, Path], pairs: list[tuple[str, ...]], workdir: Path) -> Stack:
    stack = Stack()
    bundle = workdir / "bundle.json"
    sidecars = {}
    for side, tree in trees.items():
        sidecar, grpc_port, http_port = start_sidecar(tree, workdir, bundle, f"sidecar-{side}")
        stack.processes.append(sidecar)
        sidecars[side] = (sidecar, {"grpc": grpc_port, "http": http_port})
    for name in (name for pair in pairs for name in pair):
        mode, sides = name.split(":")
        envoy_side = sides.rsplit("+", 1)[-1].removesuffix("-envoy")
        stack.ports[name] = free_port()
        if mode == "envoy-alone":
            config = render(trees[envoy_side], stack.ports[name], "none", 0)
        else:
            sidecar, authz_ports = sidecars[sides.split("-", 1)[0]]
            config = render(trees[envoy_side], stack.ports[name], mode, authz_ports[mode])
            stack.sidecar_of[name] = sidecar
        stack.processes.append(start_envoy(config, workdir, name.replace(":", "-")))
    return stack


def run_rounds(
    stack: Stack, pairs: list[tuple[str, ...]], workload: str, script: Path, args: Any
) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in stack.ports}
    # Each sidecar's token rotation goes on where its last run stopped: one sidecar serves
    # both modes of a side, and a run starting at the first token again found the tokens of
    # its sibling's run in the verified-token cache ("distinct tokens" then took 240 or 410
    # µs per Check by the order of the runs, in both sides alike).
    sent: dict[int, int] = {}
    for round_index in range(args.rounds):
        # ABBA: every other round the new side of each pair goes first.
        order = [n for pair in pairs for n in (pair if round_index % 2 == 0 else pair[::-1])]
        for name in order:
            bench.say(f"{workload} round {round_index + 1}/{args.rounds}: {name}")
            sidecar = stack.sidecar_of.get(name)
            before = bench.cpu_seconds(sidecar.pid) if sidecar else 0.0
            cache = sidecar.pid if sidecar else 0
            bench_wrk.start_tokens_at(script, sent.get(cache, 0))
            figures = bench_wrk.wrk(stack.ports[name], script, args.seconds, args.connections)
            sent[cache] = sent.get(cache, 0) + int(figures["requests"])
            if sidecar:
                figures["sidecar_cpu_us_per_request"] = (
                    (bench.cpu_seconds(sidecar.pid) - before) / figures["requests"] * 1e6
                )
            runs[name].append(figures)
    return runs


def main() -> int:
    args = arguments()
    trees = {"base": checkout(args.baseline_ref), "new": HERE}
    workdir = Path(tempfile.mkdtemp(prefix="jwtmesh-ab-run-"))
    key, _bundle = bench.signing_key_and_bundle(workdir)
    valid = bench.bench_token(key)
    tokens = {
        "valid": [valid],
        "mixed_10pct_invalid": [valid] * 9 + [valid[:-4] + "AAAA"],
        "distinct_tokens": [bench.bench_token(key) for _ in range(60_000)],
    }
    pairs = variants(args.split)
    stack = start_stack(trees, pairs, workdir)
    try:
        runs = {
            workload: run_rounds(
                stack,
                pairs,
                workload,
                bench_wrk.token_file(workdir, workload, tokens[workload]),
                args,
            )
            for workload in args.workloads.split(",")
        }
    finally:
        for process in stack.processes:
            process.stop()
    report(runs, args)
    return 0


def variants(split: bool) -> list[tuple[str, ...]]:
    """Pairs run back to back: (base, new) of Envoy alone and of each transport."""
    pairs: list[tuple[str, ...]] = [("envoy-alone:base-envoy", "envoy-alone:new-envoy")]
    for mode in ("grpc", "http"):
        pairs.append((f"{mode}:base-sidecar+base-envoy", f"{mode}:new-sidecar+new-envoy"))
        if split:
            pairs.append((f"{mode}:new-sidecar+base-envoy", f"{mode}:base-sidecar+new-envoy"))
    return pairs


def report(runs: dict[str, dict[str, list[dict[str, float]]]], args: Any) -> None:
    """Medians per variant, and the median per-round ratio of each variant to its base."""
    summary: dict[str, Any] = {}
    for workload, per in runs.items():
        print(f"\n{workload}")
        print(f"  {'variant':<44}{'req/s':>9}{'p99 ms':>9}{'µs/check':>10}{'vs base':>9}")
        summary[workload] = {}
        for name, results in per.items():
            mode = name.split(":")[0]
            base_name = (
                f"{mode}:base-envoy" if mode == "envoy-alone" else f"{mode}:base-sidecar+base-envoy"
            )
            ratios = [
                ours["rps"] / theirs["rps"]
                for ours, theirs in zip(results, per[base_name], strict=True)
            ]
            cpu = [r.get("sidecar_cpu_us_per_request", 0.0) for r in results]
            row = {
                "rps": statistics.median(r["rps"] for r in results),
                "p99_ms": statistics.median(r.get("p99_ms", 0.0) for r in results),
                "cpu_us": statistics.median(cpu),
                "ratio_to_base": statistics.median(ratios),
            }
            summary[workload][name] = row
            print(
                f"  {name:<44}{row['rps']:>9.0f}{row['p99_ms']:>9.2f}"
                f"{row['cpu_us']:>10.0f}{row['ratio_to_base']:>8.3f}x"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out / f"ab-dataplane-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "date": stamp,
                "args": {**vars(args), "out": str(args.out)},
                "runs": runs,
                "median": summary,
            },
            indent=1,
        )
    )
    bench.say(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
