"""The operator serving the injection webhook to a local kube-apiserver, for tests.

The operator runs under the chart's RBAC, which cannot write webhook configurations; the
MutatingWebhookConfiguration is registered here as the chart registers it (Pods labeled
with an identity go to /inject), pointing at the operator's loopback port with a serving
certificate signed by the local cluster's CA.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess
from jwtmesh_testing.processes import free_port

WEBHOOK_NAME = "jwtmesh-injector.jwtmesh.io"
IDENTITY_LABEL = "jwtmesh.io/identity"


@contextlib.contextmanager
def injecting_operator(
    cluster: LocalCluster, api: client.ApiClient, workdir: Path
) -> Iterator[OperatorProcess]:
    """An operator serving /inject, registered with the API server, until the block ends."""
    certs = workdir / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    assert cluster.pki is not None
    shutil.copy(cluster.pki.serving_cert, certs / "tls.crt")
    shutil.copy(cluster.pki.serving_key, certs / "tls.key")
    shutil.copy(cluster.pki.ca, certs / "ca.crt")
    port = free_port()
    process = OperatorProcess.for_cluster(
        cluster,
        workdir,
        name="injector",
        extra=[
            *("--webhook", f"127.0.0.1:{port}", "--webhook-cert-dir", str(certs)),
            *("--envoy-image", "envoyproxy/envoy:v1.36.3", "--sidecar-image", "jwtmesh:test"),
        ],
    )
    admission: Any = client.AdmissionregistrationV1Api(api)
    admission.create_mutating_webhook_configuration(
        webhook_configuration(port, cluster.pki.ca.read_bytes())
    )
    try:
        yield process
    finally:
        process.stop()
        admission.delete_mutating_webhook_configuration(WEBHOOK_NAME)


def webhook_configuration(port: int, ca: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_NAME},
        "webhooks": [
            {
                "name": "inject.jwtmesh.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "objectSelector": {
                    "matchExpressions": [{"key": IDENTITY_LABEL, "operator": "Exists"}]
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "operations": ["CREATE"],
                        "scope": "Namespaced",
                    }
                ],
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/inject",
                    "caBundle": base64.b64encode(ca).decode(),
                },
            }
        ],
    }


def pod(
    name: str,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    service_account: str | None = None,
    host_network: bool = False,
) -> dict[str, Any]:
    """A Pod running as the ServiceAccount named like its identity (unless told otherwise)."""
    identity = (labels or {}).get(IDENTITY_LABEL)
    spec: dict[str, Any] = {
        "serviceAccountName": service_account or identity or "default",
        "containers": [{"name": "app", "image": "census:demo", "ports": [{"containerPort": 8080}]}],
    }
    if host_network:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
        "spec": spec,
    }


def create_pod(core: Any, namespace: str, body: dict[str, Any], timeout: float = 30) -> Any:
    """Create a Pod, retrying while the webhook registration propagates (HTTP 500)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return core.create_namespaced_pod(namespace, body)
        except ApiException as exc:
            if exc.status != 500 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def refused_pod(core: Any, namespace: str, body: dict[str, Any]) -> tuple[int, str]:
    """The HTTP status and message with which the API server refuses to create the Pod
    (it fails the test if the Pod is created)."""
    try:
        create_pod(core, namespace, body)
    except ApiException as exc:
        return int(exc.status), str(json.loads(exc.body or "{}").get("message", exc.reason))
    raise AssertionError(f"Pod {body['metadata']['name']} was created; a refusal was expected")
