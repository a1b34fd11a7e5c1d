"""`make demo`'s checks on a real cluster: the Helm chart with its default values (two
operator replicas; only the image names are local), the Herald → Census example, real Pods
with Envoy and the sidecar injected, every request from Herald's Pod through the pod
network, CoreDNS and Census's Service.

Tokens other than the ones Herald's sidecar mints are signed on the host with Herald's key
from its Secret, as an attacker holding that key could sign them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from jwtmesh_testing.realcluster.clusterapi import ClusterApi, sign
from jwtmesh_testing.realcluster.workloads import DEMO_NAMESPACE, Kube, LocalImages

pytestmark = pytest.mark.cluster
CENSUS = "census.demo.svc:8080"
EGRESS = "http://127.0.0.1:15001"  # Herald's Envoy egress listener: attaches a minted token
INJECTED = "jwtmesh.io/injected"


def from_herald(kube: Kube, *argv: str) -> str:
    """`demo-http get` in Herald's app container: "<status>[ <reason code>]"."""
    return kube.exec_in("herald", "app", "demo-http", "get", *argv)


def to_census(kube: Kube, token: str, method: str = "GET") -> str:
    """From Herald's Pod straight to Census's Service (not through the egress listener)."""
    bearer = f"authorization: Bearer {token}"
    return from_herald(kube, "-X", method, "-H", bearer, f"http://{CENSUS}/users/7")


def test_every_demo_pod_is_ready_with_envoy_and_the_sidecar(herald_census: Kube) -> None:
    pods = herald_census.json("-n", DEMO_NAMESPACE, "get", "pods")["items"]
    assert {p["metadata"]["labels"]["app"] for p in pods} == {"census", "herald"}
    for pod in pods:
        names = [c["name"] for c in pod["spec"]["containers"]]
        assert names == ["app", "jwtmesh-envoy", "jwtmesh-sidecar"], pod["metadata"]["name"]
        statuses = pod["status"]["containerStatuses"]
        assert all(s["ready"] for s in statuses), statuses


def test_pods_applied_with_their_new_identity_are_admitted(
    herald_census: Kube, images: LocalImages
) -> None:
    """Identities, ServiceAccounts and Pods in one `kubectl apply`, with two operator
    replicas: each Pod is admitted once its identity exists, whichever replica answers (the
    webhook reads the identity from the API; from kopf's index, the standing-by replica
    refused 6 of 6). The Pods never run: no node matches their nodeSelector."""
    namespace, count = "same-apply", 6
    documents: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    ]
    for index in range(count):
        name, meta = f"alpha{index}", {"name": f"alpha{index}", "namespace": namespace}
        documents += [
            {"apiVersion": "jwtmesh.io/v1alpha1", "kind": "ServiceIdentity", "metadata": meta},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {**meta, "labels": {"jwtmesh.io/identity": name}},
                "spec": {
                    "serviceAccountName": name,
                    "nodeSelector": {"jwtmesh.io/no-such-node": "true"},
                    "containers": [
                        {"name": "app", "image": images.demo, "ports": [{"containerPort": 80}]}
                    ],
                },
            },
        ]
    try:
        herald_census.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
        pods = herald_census.json("-n", namespace, "get", "pods")["items"]
        injected = [p for p in pods if p["metadata"].get("annotations", {}).get(INJECTED)]
        assert len(injected) == count
    finally:
        herald_census.kubectl("delete", "namespace", namespace, "--wait=false")


def test_herald_reaches_census_with_a_minted_token(herald_census: Kube) -> None:
    assert from_herald(herald_census, "-H", f"host: {CENSUS}", f"{EGRESS}/users/7") == "200"


def test_census_sees_the_verified_caller(herald_census: Kube) -> None:
    script = (
        "import urllib.request as u;"
        f"r = u.Request('{EGRESS}/users/7', headers={{'host': '{CENSUS}'}});"
        "print(u.urlopen(r, timeout=10).read().decode())"
    )
    body = herald_census.exec_in("herald", "app", "python3", "-c", script)
    assert body.startswith("census")
    assert "'x-jwtmesh-subject': 'herald.demo'" in body


def test_no_token(herald_census: Kube) -> None:
    assert from_herald(herald_census, f"http://{CENSUS}/users/7") == "401 missing_token"


def test_a_token_for_another_audience(herald_census: Kube, api: ClusterApi) -> None:
    token = sign(api.identity_keys(DEMO_NAMESPACE, "herald"), "billing.demo")
    assert to_census(herald_census, token) == "401 wrong_audience"


def test_a_caller_without_the_required_role(herald_census: Kube) -> None:
    """Census's policy: DELETE needs `admin`; Herald holds `reader` only."""
    deleting = from_herald(
        herald_census, "-X", "DELETE", "-H", f"host: {CENSUS}", f"{EGRESS}/users/7"
    )
    assert deleting == "403 role_required"


def test_a_caller_giving_itself_a_role_in_its_token(herald_census: Kube, api: ClusterApi) -> None:
    token = sign(api.identity_keys(DEMO_NAMESPACE, "herald"), "census.demo", roles=["admin"])
    assert to_census(herald_census, token, "DELETE") == "401 claim_not_granted"


def test_heralds_key_naming_another_service_as_sub(herald_census: Kube, api: ClusterApi) -> None:
    token = sign(api.identity_keys(DEMO_NAMESPACE, "herald"), "census.demo", sub="census.demo")
    assert to_census(herald_census, token) == "401 subject_mismatch"


def test_the_operator_runs_as_65532_on_a_read_only_root(herald_census: Kube) -> None:
    script = "import os; print(os.getuid(), os.access('/', os.W_OK), os.access('/tmp', os.W_OK))"
    out = herald_census.kubectl(
        "-n", "jwtmesh-system", "exec", "deploy/jwtmesh-jwtmesh", "--", "python3", "-c", script
    )
    assert out.split() == ["65532", "False", "True"]


def test_kubectl_shows_when_each_identity_rotates_next(herald_census: Kube) -> None:
    """The printer column is the timestamp itself (as a date column kubectl printed the age of
    a future time as "<invalid>")."""
    table = herald_census.kubectl("-n", DEMO_NAMESPACE, "get", "serviceidentities")
    header, *rows = table.splitlines()
    column = header.index("NEXT ROTATION")
    assert len(rows) == 2
    for row in rows:
        assert datetime.fromisoformat(row[column:].split()[0]) > datetime.now(UTC), row
