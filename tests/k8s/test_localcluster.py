"""The local control plane is real: version, objects, garbage collection, namespaces, kubectl."""

from __future__ import annotations

import re
import ssl
import subprocess
import urllib.request
import uuid

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwtmesh_testing.kubeapply import create_namespace, wait_for
from jwtmesh_testing.localcluster import LocalCluster

pytestmark = pytest.mark.k8s


def test_apiserver_reports_the_pinned_1_34_release(
    local_cluster: LocalCluster, kube_api: client.ApiClient
) -> None:
    """The version ldflags took: /version is the real release, not v0.0.0-master."""
    version = client.VersionApi(kube_api).get_code()
    assert re.fullmatch(r"v1\.34\.\d+", version.git_version)
    assert version.git_version == local_cluster.binaries.kubernetes_version
    assert (version.major, version.minor) == ("1", "34")


def test_the_kubeconfig_files_reach_the_server_over_verified_tls(
    local_cluster: LocalCluster,
) -> None:
    """server_url, ca_file and the admin client certificate are what a client needs."""
    context = ssl.create_default_context(cafile=str(local_cluster.ca_file))
    context.load_cert_chain(str(local_cluster.client_cert_file), str(local_cluster.client_key_file))
    with urllib.request.urlopen(
        f"{local_cluster.server_url}/readyz", context=context, timeout=5
    ) as response:
        assert response.status == 200


def test_a_namespace_and_a_config_map_can_be_created_and_read(
    kube_api: client.ApiClient,
) -> None:
    core = client.CoreV1Api(kube_api)
    namespace = f"objects-{uuid.uuid4().hex[:6]}"
    create_namespace(kube_api, namespace)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"k": "v"}),
    )
    assert core.read_namespaced_config_map("settings", namespace).data == {"k": "v"}


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


def test_a_deleted_namespace_is_emptied_and_removed(kube_api: client.ApiClient) -> None:
    """The namespace controller runs: a deleted namespace does not stay Terminating."""
    core = client.CoreV1Api(kube_api)
    namespace = f"doomed-{uuid.uuid4().hex[:6]}"
    create_namespace(kube_api, namespace)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="content"))
    )
    core.delete_namespace(namespace)

    def namespace_gone() -> bool:
        try:
            core.read_namespace(namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    try:
        wait_for(namespace_gone, 30, f"namespace {namespace} to be removed")
    except TimeoutError as exc:
        status = core.read_namespace(namespace).status
        raise AssertionError(f"{exc}; still {status.phase}: {status.conditions}") from None


def test_kubectl_built_here_talks_to_the_cluster(local_cluster: LocalCluster) -> None:
    kubectl = [str(local_cluster.binaries.kubectl), "--kubeconfig", str(local_cluster.kubeconfig)]
    namespaces = subprocess.run(
        [*kubectl, "get", "ns", "-o", "name"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert {"namespace/default", "namespace/kube-system"} <= set(namespaces)
    client_version = subprocess.run(
        [*kubectl, "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    assert f"Client Version: {local_cluster.binaries.kubernetes_version}" in client_version


def test_objects_survive_restarts_of_etcd_and_the_apiserver(
    local_cluster: LocalCluster, kube_api: client.ApiClient
) -> None:
    """The fault-test hooks keep ports and data: the same client works afterwards."""
    core = client.CoreV1Api(kube_api)
    namespace = f"restart-{uuid.uuid4().hex[:6]}"
    create_namespace(kube_api, namespace)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="kept"), data={"x": "1"})
    )
    server_url = local_cluster.server_url

    local_cluster.restart_etcd()
    local_cluster.stop_apiserver()
    local_cluster.start_apiserver()

    assert local_cluster.server_url == server_url
    kept = wait_for(
        lambda: core.read_namespaced_config_map("kept", namespace), 30, "the API to answer again"
    )
    assert kept.data == {"x": "1"}
