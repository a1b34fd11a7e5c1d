"""The operator's readiness and log lines, and the day-two commands (status, rotate,
revoke, bundle show --namespace, explain --namespace) against a real API server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jwtmesh_testing.kubeapply import create_object, service_identity, wait_for
from jwtmesh_testing.kubelet_volume import KubeletVolume
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess

pytestmark = [pytest.mark.k8s, pytest.mark.slow]  # up to ~40 s per test
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def operator(
    local_cluster: LocalCluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess.for_cluster(local_cluster, tmp_path_factory.mktemp("operator"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def herald(operator: OperatorProcess, cluster_objects: Any) -> dict[str, Any]:
    """A Ready identity, published in its namespace's bundle."""
    ns = cluster_objects.namespace("daytwo")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald"))
    status: dict[str, Any] = cluster_objects.ready_identity(ns, "herald")["status"]
    wait_for(lambda: cluster_objects.bundle_kids(ns, status["issuer"]), 10, "published")
    return {"namespace": ns, **status}


def jwtmesh(*args: str, cluster: LocalCluster | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--kubeconfig", str(cluster.kubeconfig)] if cluster is not None else []
    return subprocess.run(
        [sys.executable, "-m", "jwtmesh_sidecar.cli", *args, *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_operator_log_line_is_one_json_schema(operator: OperatorProcess) -> None:
    """kopf's lines and ours alike: ts (RFC 3339), level, event, logger, msg."""
    lines = operator.process.log_path.read_text().splitlines()
    assert lines
    events = set()
    for line in lines:
        entry = json.loads(line)
        assert {"ts", "level", "event", "logger", "msg"} <= entry.keys(), line
        assert RFC3339.match(entry["ts"]), line
        events.add(entry["event"])
    assert {"started", "synced"} <= events


def test_the_operator_is_ready_once_synced(operator: OperatorProcess) -> None:
    assert operator.get("/readyz") == b"ready\n"
    assert b"jwtmesh_operator_synced 1" in operator.get("/metrics")


def test_status(herald: dict[str, Any], local_cluster: LocalCluster) -> None:
    ns = herald["namespace"]
    shown = jwtmesh("status", "herald", "-n", ns, "-o", "json", cluster=local_cluster)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"]["activeKid"] == herald["activeKid"]
    text = jwtmesh("status", "herald", "-n", ns, cluster=local_cluster).stdout
    assert f"{ns}/herald: Ready=True" in text
    assert "next rotation" in text
    missing = jwtmesh("status", "nobody", "-n", ns, cluster=local_cluster)
    assert missing.returncode == 2
    assert missing.stderr == f"Error: status serviceidentity {ns}/nobody: not found\n"


def test_bundle_show_explain_and_revoke(
    herald: dict[str, Any], cluster_objects: Any, local_cluster: LocalCluster, tmp_path: Path
) -> None:
    ns, audience = herald["namespace"], f"herald.{herald['namespace']}"
    shown = jwtmesh("bundle", "show", "--namespace", ns, "-o", "json", cluster=local_cluster)
    keys = json.loads(shown.stdout)["issuers"][herald["issuer"]]["keys"]
    assert herald["activeKid"] in {key["kid"] for key in keys}
    secret = KubeletVolume(tmp_path / "herald-secret")
    secret.write(cluster_objects.secret_data(ns, "herald-jwtmesh-key"))
    keys_file = str(secret.path("signing-keys.json"))
    token = jwtmesh("token", "mint", "--keys", keys_file, "--aud", audience).stdout.strip()
    explain = ("explain", token, "--namespace", ns, "--audience", audience)
    passed = jwtmesh(*explain, "-o", "json", cluster=local_cluster)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    jti = json.loads(passed.stdout)["token"]["jti"]
    revoked = jwtmesh("revoke", "--token", token, "--reason", "test", cluster=local_cluster)
    assert revoked.returncode == 0, revoked.stderr

    def in_bundle() -> bool:
        entry = (cluster_objects.bundle(ns) or {}).get("issuers", {}).get(herald["issuer"], {})
        return jti in entry.get("revocations", {}).get("jtis", {})

    wait_for(in_bundle, 15, "the revocation in the bundle")
    refused = jwtmesh(*explain, cluster=local_cluster)
    assert refused.returncode == 1
    assert refused.stdout.startswith("FAIL token_revoked (401)")


def test_rotate(herald: dict[str, Any], cluster_objects: Any, local_cluster: LocalCluster) -> None:
    ns = herald["namespace"]
    rotated = jwtmesh("rotate", "herald", "-n", ns, cluster=local_cluster)
    assert rotated.returncode == 0, rotated.stderr
    wait_for(
        lambda: cluster_objects.identity(ns, "herald")["status"].get("lastRotationRequest"),
        15,
        "the rotation request seen",
    )


def test_rotate_all(
    herald: dict[str, Any], cluster_objects: Any, local_cluster: LocalCluster
) -> None:
    ns = herald["namespace"]
    both = jwtmesh("rotate", "herald", "--all", "-n", ns, cluster=local_cluster)
    assert both.returncode != 0
    assert "not both" in both.stderr
    rotated = jwtmesh("rotate", "--all", "-n", ns, cluster=local_cluster)
    assert rotated.returncode == 0, rotated.stderr
    assert "every identity" in rotated.stdout
    wait_for(
        lambda: cluster_objects.identity(ns, "herald")["status"].get(
            "lastNamespaceRotationRequest"
        ),
        15,
        "the namespace's rotation request seen",
    )
    missing = jwtmesh("rotate", "--all", "-n", "no-such-namespace", cluster=local_cluster)
    assert missing.returncode != 0
    assert "not found" in missing.stderr
