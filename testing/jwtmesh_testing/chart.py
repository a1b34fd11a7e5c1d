"""The chart's own objects in a local cluster: its RBAC (the operator runs under it in the
tests, never as an admin) and its ValidatingAdmissionPolicy (the tenant boundary, up front).

`operator_kubeconfig(cluster)` renders charts/jwtmesh with `helm template`, applies the
ServiceAccount, (Cluster)Roles, their bindings and the admission policy with kubectl, asks
the API server for a token of that ServiceAccount (TokenRequest) and writes a kubeconfig
holding that token: exactly the permissions an installed operator has.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from jwtmesh_testing.kubeapply import api_client, create_namespace
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.paths import CHART

RELEASE = "jwtmesh"
NAMESPACE = "jwtmesh-system"
SERVICE_ACCOUNT = f"{RELEASE}-jwtmesh"
TRUST_DOMAIN = "jwtmesh.cluster.local"
APPLIED_KINDS = frozenset(
    {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)


def render(cluster: LocalCluster, *values: str) -> list[dict[str, Any]]:
    """`helm template` of the chart, as objects (`values`: `--set key=value` arguments)."""
    sets = [arg for value in values for arg in ("--set", value)]
    rendered = subprocess.run(
        [
            str(cluster.binaries.helm),
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            cluster.binaries.kubernetes_version,
            *sets,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [document for document in yaml.safe_load_all(rendered) if document]


def kubectl_apply(cluster: LocalCluster, objects: list[dict[str, Any]]) -> None:
    subprocess.run(
        [
            str(cluster.binaries.kubectl),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "apply",
            "-f",
            "-",
        ],
        input=yaml.safe_dump_all(objects),
        check=True,
        capture_output=True,
        text=True,
    )


def install_chart_policy(cluster: LocalCluster, *values: str) -> list[dict[str, Any]]:
    """The chart's RBAC and admission policy, applied; returns what was applied."""
    objects = [obj for obj in render(cluster, *values) if obj["kind"] in APPLIED_KINDS]
    create_namespace(api_client(cluster.kubeconfig), NAMESPACE)
    for obj in objects:  # `watchNamespaces` Roles live in namespaces that may not exist yet
        if obj.get("metadata", {}).get("namespace"):
            create_namespace(api_client(cluster.kubeconfig), obj["metadata"]["namespace"])
    kubectl_apply(cluster, objects)
    return objects


def operator_kubeconfig(cluster: LocalCluster, *values: str) -> Path:
    """A kubeconfig with the token of the chart's operator ServiceAccount (cached per
    cluster and values)."""
    digest = hashlib.sha256("\n".join(values).encode()).hexdigest()[:12]
    path = cluster.workdir / f"operator-{digest}.kubeconfig"
    if path.exists():
        return path
    install_chart_policy(cluster, *values)
    api = api_client(cluster.kubeconfig)
    token: Any = client.CoreV1Api(api).create_namespaced_service_account_token(
        SERVICE_ACCOUNT,
        NAMESPACE,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=24 * 3600)
        ),
    )
    ca = Path(cluster.ca_file).read_bytes()
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": cluster.server_url,
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token.status.token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": "local", "user": SERVICE_ACCOUNT}}
        ],
        "current-context": "operator",
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(document))
    return path
