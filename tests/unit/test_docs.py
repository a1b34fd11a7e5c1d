"""The documentation says what the code does: every reason code and condition has its
cause and fix in docs/troubleshooting.md, every documented metric is served (and every
served one documented), the chart's alerts and dashboard use real metrics, and the
README's YAML examples pass the CRDs' own schemas."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from jwtmesh.reasons import REFUSALS
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, render_bundle
from jwtmesh_operator import conditions, desired, planning, revocations, tenancy
from jwtmesh_operator.api_requests import RequestCounter
from jwtmesh_operator.collector import CollectorTime
from jwtmesh_operator.http import METRICS, metrics_text
from jwtmesh_operator.readiness import Readiness
from jwtmesh_sidecar.app import Sidecar
from jwtmesh_sidecar.config import config_from_dict
from jwtmesh_testing.paths import CHART, CRD_DIR, REPO_ROOT

TROUBLESHOOTING = (REPO_ROOT / "docs" / "troubleshooting.md").read_text()
README = (REPO_ROOT / "README.md").read_text()
METRIC_NAME = re.compile(r"\bjwtmesh_[a-z_]+\b")


def _constants(module: Any) -> set[str]:
    return {
        value
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[A-Z][A-Za-z]+", value)
    }


def test_every_reason_code_has_its_cause_and_fix() -> None:
    headings = set(re.findall(r"^### ([a-z_]+)$", TROUBLESHOOTING, re.MULTILINE))
    assert headings == set(REFUSALS)


def test_every_condition_reason_and_event_is_explained() -> None:
    reasons = set().union(
        *(_constants(m) for m in (conditions, tenancy, revocations, planning, desired))
    )
    reasons -= {"UpToDate", "Ready", "Degraded", "BundleSizeOK"}
    reasons |= {"SecretNameTaken", "ReconcileFailed"}
    missing = sorted(reason for reason in reasons if f"`{reason}`" not in TROUBLESHOOTING)
    assert missing == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served_sidecar_metrics(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The metric families a running sidecar's /metrics serves."""
    key = generate_signing_key()
    bundle = tmp_path_factory.mktemp("docs") / "bundle.json"
    bundle.write_bytes(
        render_bundle(TrustBundle({"https://i": IssuerTrust({key.kid: key.public})}))
    )
    ops = _free_port()
    sidecar = Sidecar(
        config_from_dict(
            {
                "identity": "census.a",
                "listen": {"http": f"127.0.0.1:{_free_port()}", "metrics": f"127.0.0.1:{ops}"},
                "trust": {"bundleFiles": [str(bundle)]},
                "noPolicy": True,
            }
        )
    )
    sidecar.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ops}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        sidecar.stop()
    return set(re.findall(r"^# HELP (\S+) ", text, re.MULTILINE))


def _documented(section: str) -> set[str]:
    """Metric names in the first table after `section` in troubleshooting.md."""
    start = TROUBLESHOOTING.index(section)
    table = TROUBLESHOOTING[start:].split("\n\n", 2)[1]
    return {re.match(r"\| `([a-z_]+)", line).group(1) for line in table.splitlines()[2:]}  # type: ignore[union-attr]


def _family(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count|created)$", "", name)


def test_the_documented_sidecar_metrics_are_what_it_serves(
    served_sidecar_metrics: set[str],
) -> None:
    documented = {_family(name) for name in _documented("The sidecar (`:15090/metrics`):")}
    assert documented == {_family(name) for name in served_sidecar_metrics}


def test_the_documented_operator_metrics_are_what_it_serves() -> None:
    state: Any = SimpleNamespace(
        counters=SimpleNamespace(reconciles=0, reconcile_errors=0, keys_generated=0),
        publisher=SimpleNamespace(last=None, publishes=0, pending=False, bytes_written=0),
        scheduler=SimpleNamespace(backlog=lambda: 0),
        kube=SimpleNamespace(requests=RequestCounter()),
        events=SimpleNamespace(posted=0, dropped=0, failed=0),
        collector=CollectorTime(),
        clock=lambda: 0.0,
        readiness=Readiness(),
        identities={},
        identities_known=lambda: 0,
        memory_limit=None,
    )
    served = set(re.findall(r"^# HELP (\S+) ", metrics_text(state), re.MULTILINE))
    assert served == set(METRICS)
    assert _documented("The operator (`:8080/metrics`):") == served


def test_the_readme_names_only_real_metrics(served_sidecar_metrics: set[str]) -> None:
    real = {_family(n) for n in served_sidecar_metrics | set(METRICS)}
    packages = {"jwtmesh_sidecar", "jwtmesh_operator", "jwtmesh_testing"}
    named = {_family(n) for n in METRIC_NAME.findall(README) if n not in packages}
    assert named
    assert named <= real


def test_the_chart_alerts_and_dashboard_use_real_metrics(served_sidecar_metrics: set[str]) -> None:
    real = {_family(n) for n in served_sidecar_metrics | set(METRICS)} | {
        "jwtmesh_decision_seconds"
    }
    rules = (CHART / "templates" / "prometheusrule.yaml").read_text()
    dashboard = json.loads((CHART / "dashboards" / "jwtmesh.json").read_text())
    used = set(METRIC_NAME.findall(rules)) | set(METRIC_NAME.findall(json.dumps(dashboard)))
    assert {_family(n) for n in used} <= real
    anchors = set(re.findall(r'#([a-z_-]+)"', rules))
    for anchor in anchors:
        assert f'id="{anchor}"' in TROUBLESHOOTING or f"### {anchor}" in TROUBLESHOOTING, anchor


def _crd_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for path in CRD_DIR.glob("*.jwtmesh.io.yaml"):
        crd = yaml.safe_load(path.read_text())
        version = crd["spec"]["versions"][0]
        schemas[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return schemas


def _check(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    """The structural part of an OpenAPI v3 schema: types, known properties, enums,
    patterns, ranges (CEL rules are the API server's, run in tests/k8s)."""
    problems: list[str] = []
    kind = schema.get("type")
    if kind == "string" and schema.get("format") == "date-time" and isinstance(value, datetime):
        return []  # YAML reads an unquoted RFC 3339 time as a datetime; so does the API server
    python = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}
    if kind in python and not isinstance(value, python[kind]):
        return [f"{where}: expected {kind}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if kind == "string" and "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if kind == "integer" and not schema.get("minimum", value) <= value <= schema.get(
        "maximum", value
    ):
        problems.append(f"{where}: {value} out of range")
    if kind == "object" and isinstance(value, dict):
        properties = schema.get("properties", {})
        open_ended = (
            schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema
        )
        for key, item in value.items():
            if key in properties:
                problems += _check(item, properties[key], f"{where}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += _check(item, schema["additionalProperties"], f"{where}.{key}")
            elif not open_ended:
                problems.append(f"{where}.{key}: unknown field")
    if kind == "array" and isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += _check(item, schema["items"], f"{where}[{index}]")
    return problems


def _readme_resources() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)
    documents = [doc for block in blocks for doc in yaml.safe_load_all(block) if doc]
    return [doc for doc in documents if str(doc.get("apiVersion", "")).startswith("jwtmesh.io/")]


def test_the_readme_yaml_examples_pass_the_crd_schemas() -> None:
    schemas = _crd_schemas()
    resources = _readme_resources()
    assert {doc["kind"] for doc in resources} >= {"ServiceIdentity", "TokenRevocation"}
    for doc in resources:
        assert _check(doc["spec"], schemas[doc["kind"]]["properties"]["spec"], doc["kind"]) == []


def test_the_schema_check_catches_a_typo() -> None:
    schema = _crd_schemas()["ServiceIdentity"]["properties"]["spec"]
    assert _check({"rotaton": {}}, schema, "spec") == ["spec.rotaton: unknown field"]
    assert _check({"algorithm": "HS256"}, schema, "spec")
