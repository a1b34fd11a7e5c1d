"""The data-plane bench's report: medians, tables with like-for-like ratios, targets, chart."""

from __future__ import annotations

import statistics
from pathlib import Path

Runs = dict[str, dict[str, list[dict[str, float]]]]
Summary = dict[str, dict[str, dict[str, float]]]
# Each row's ratio is against the native variant that did the same work: jwt_authn without
# its cache for checks that verify, with its cache where jwtmesh's own cache answers.
REFERENCES = {
    "native": "b_jwt_authn",
    "native cached": "b_jwt_authn_cached",
}


def medians(runs: Runs) -> Summary:
    return {
        workload: {
            name: {
                metric: statistics.median(run[metric] for run in results) for metric in results[0]
            }
            for name, results in per.items()
        }
        for workload, per in runs.items()
    }


def table(workload: str, per: dict[str, dict[str, float]]) -> list[str]:
    references = {label: per[name] for label, name in REFERENCES.items() if name in per}
    paced = any("target_rps" in figures for figures in per.values())
    head = "  {:<24}{:>9}{:>9}{:>9}".format("variant", "req/s", "p50 ms", "p99 ms")
    head += "{:>9}{:>8}".format("target", "late %") if paced else ""
    head += "".join(f"{'vs ' + label:>18}" for label in references)
    head += "{:>9}{:>10}{:>10}".format("non-2xx", "µs/check", "envoy µs")
    lines = [workload, head]
    for name, figures in per.items():
        row = "  {:<24}{:>9.0f}{:>9.2f}{:>9.2f}".format(
            name, figures["rps"], figures.get("p50_ms", 0.0), figures.get("p99_ms", 0.0)
        )
        if paced:
            row += "{:>9.0f}{:>8.1f}".format(figures["target_rps"], figures.get("late_pct", 0.0))
        row += "".join(f"{figures['rps'] / ref['rps']:>17.2f}x" for ref in references.values())
        row += "{:>9.0f}{:>10}{:>10}".format(
            figures["non2xx"],
            _micros(figures.get("sidecar_cpu_us_per_request")),
            _micros(figures.get("envoy_cpu_us_per_request")),
        )
        lines.append(row)
    return lines


def _micros(value: float | None) -> str:
    return f"{value:.0f}" if value else "-"


def ratios(summary: Summary) -> dict[str, float]:
    """The like-for-like ratios the docs quote, by name."""
    out = {**_versus_baseline(summary), **_versus_floor(summary)}
    if "valid" not in summary or "distinct_tokens" not in summary:
        return {name: round(value, 2) for name, value in out.items()}
    valid, distinct = summary["valid"], summary["distinct_tokens"]
    for mode in ("c_jwtmesh_grpc", "c_jwtmesh_grpc_unix", "d_jwtmesh_http"):
        if mode in valid and "b_jwt_authn_cached" in valid:
            out[f"{mode} / native (valid)"] = valid[mode]["rps"] / valid["b_jwt_authn"]["rps"]
            out[f"{mode} / native cached (valid)"] = (
                valid[mode]["rps"] / valid["b_jwt_authn_cached"]["rps"]
            )
        if mode in distinct:
            out[f"{mode} / native (distinct)"] = (
                distinct[mode]["rps"] / distinct["b_jwt_authn"]["rps"]
            )
    return {name: round(value, 2) for name, value in out.items()}


def _versus_baseline(summary: Summary) -> dict[str, float]:
    """This build against the --baseline build, per workload (paired: the same run)."""
    out = {}
    for workload, per in summary.items():
        for mode in ("c_jwtmesh_grpc", "d_jwtmesh_http"):
            base = per.get(f"{mode}_baseline")
            if base is not None and mode in per:
                out[f"{mode} / baseline ({workload})"] = per[mode]["rps"] / base["rps"]
    return out


def _versus_floor(summary: Summary) -> dict[str, float]:
    """Each mode's CPU per Check against its floor authorizer's (a fixed answer, nothing
    parsed or decided, bench/floor_authorizer.py), per workload, in the same run."""
    out = {}
    for workload, per in summary.items():
        for ours_name, floor_name in (
            ("d_jwtmesh_http", "e_floor_http"),
            ("c_jwtmesh_grpc", "e_floor_grpc"),
        ):
            ours, floor = per.get(ours_name), per.get(floor_name)
            if ours is not None and floor is not None and floor.get("sidecar_cpu_us_per_request"):
                out[f"{ours_name} CPU per check / floor ({workload})"] = (
                    ours["sidecar_cpu_us_per_request"] / floor["sidecar_cpu_us_per_request"]
                )
    return out


def verdicts(summary: Summary, reload: dict[str, float], runs: Runs) -> dict[str, bool]:
    valid, rate = summary["valid"], summary["fixed_1000_rps"]
    native = valid["b_jwt_authn"]["rps"]
    return {
        "gRPC sidecar >= 0.6x native uncached": valid["c_jwtmesh_grpc"]["rps"] / native >= 0.6,
        "HTTP mode >= 1.0x native uncached": valid["d_jwtmesh_http"]["rps"] / native >= 1.0,
        "gRPC p99 at ~1,000 req/s <= native + 1 ms": rate["c_jwtmesh_grpc"]["p99_ms"]
        <= rate["b_jwt_authn"]["p99_ms"] + 1,
        "HTTP p99 at ~1,000 req/s <= native + 1 ms": rate["d_jwtmesh_http"]["p99_ms"]
        <= rate["b_jwt_authn"]["p99_ms"] + 1,
        "reload <= 1 s": reload["background_reload_ms"] <= 1000,
        **latency_verdicts(summary, runs),
    }


# Issue 14, per mode: (fixed ~1,000 req/s: CPU µs per check at most, valid token at least
# this times native uncached, distinct tokens at least this times native).
ISSUE_14 = {"c_jwtmesh_grpc": ("gRPC", 60, 1.2, 0.45), "d_jwtmesh_http": ("HTTP", 40, 1.6, 0.6)}


def latency_verdicts(summary: Summary, runs: Runs) -> dict[str, bool]:
    """The targets of issue 14: p50 and p99 at ~1,000 req/s in every round (each against
    native's in the same round), the rest on the medians of the run."""
    valid, distinct, rate = (
        summary["valid"],
        summary["distinct_tokens"],
        summary["fixed_1000_rps"],
    )
    rounds = runs["fixed_1000_rps"]
    out = {}
    for mode, (label, cpu, valid_x, distinct_x) in ISSUE_14.items():
        pairs = list(zip(rounds["b_jwt_authn"], rounds[mode], strict=True))
        out[f"{label} p99 at ~1,000 req/s <= native + 0.5 ms, every round"] = all(
            ours["p99_ms"] <= native["p99_ms"] + 0.5 for native, ours in pairs
        )
        out[f"{label} p50 at ~1,000 req/s <= native + 0.2 ms, every round"] = all(
            ours["p50_ms"] <= native["p50_ms"] + 0.2 for native, ours in pairs
        )
        out[f"{label} CPU per check at ~1,000 req/s <= {cpu} µs"] = (
            rate[mode]["sidecar_cpu_us_per_request"] <= cpu
        )
        out[f"{label} valid token >= {valid_x}x native uncached"] = (
            valid[mode]["rps"] >= valid_x * valid["b_jwt_authn"]["rps"]
        )
        out[f"{label} distinct tokens >= {distinct_x}x native"] = (
            distinct[mode]["rps"] >= distinct_x * distinct["b_jwt_authn"]["rps"]
        )
    out["the paced load held its rate (within 5%, at most 1% late)"] = all(
        abs(figures["rps"] - figures["target_rps"]) <= 0.05 * figures["target_rps"]
        and figures.get("late_pct", 0.0) <= 1.0
        for workload, per in summary.items()
        if workload.startswith("fixed_")
        for figures in per.values()
    )
    return out


def chart(summary: Summary, path: Path) -> bool:
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
