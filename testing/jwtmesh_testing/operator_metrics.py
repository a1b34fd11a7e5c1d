"""What a running operator reports on /metrics, as tests and benchmarks read it."""

from __future__ import annotations

import urllib.request
from collections import Counter

API_REQUESTS = "jwtmesh_operator_api_requests_total{"


def read_metrics(port: int) -> dict[str, float]:
    """The operator's /metrics as `name{labels}` → value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def api_requests(metrics: dict[str, float]) -> Counter[str]:
    """Its API requests so far (jwtmesh_operator_api_requests_total) as "verb resource"
    → count, e.g. "get secrets"."""
    found: Counter[str] = Counter()
    for name, value in metrics.items():
        if name.startswith(API_REQUESTS):
            labels = dict(part.split("=", 1) for part in name[len(API_REQUESTS) : -1].split(","))
            found[f"{labels['verb'].strip(chr(34))} {labels['resource'].strip(chr(34))}"] += int(
                value
            )
    return found
