"""The local control plane is real: version, objects, garbage collection, kubectl."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwtmesh.testing.kubeapply import create_namespace, wait_for
from jwtmesh.testing.localcluster import LocalCluster

pytestmark = pytest.mark.k8s


def test_apiserver_reports_the_pinned_version(
    local_cluster: LocalCluster, kube_api: client.ApiClient
) -> None:
    version = client.VersionApi(kube_api).get_code()
    assert version.git_version == local_cluster.binaries.kubernetes_version


def test_garbage_collector_removes_owned_objects(kube_api: client.ApiClient) -> None:
    """kube-controller-manager runs: an owned Secret goes when its owner goes."""
    core = client.CoreV1Api(kube_api)
    namespace = f"gc-{uuid.uuid4().hex[:6]}"
    create_namespace(kube_api, namespace)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"a": "b"})
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="owned", owner_references=[reference])),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def secret_gone() -> bool:
        try:
            core.read_namespaced_secret("owned", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(secret_gone, 30, "the owned Secret to be garbage-collected")


def test_kubectl_built_here_talks_to_the_cluster(local_cluster: LocalCluster) -> None:
    out = subprocess.run(
        [
            str(local_cluster.binaries.kubectl),
            "--kubeconfig",
            str(local_cluster.kubeconfig),
            "get",
            "ns",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "kube-system" in out
