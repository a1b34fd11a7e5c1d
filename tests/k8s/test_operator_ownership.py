"""What outlives the operator: after `helm uninstall` no operator runs, and removing the
identities, their namespaces or the CRDs must still work and leave nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from jwtmesh_testing.kubeapply import (
    create_object,
    delete_object,
    get_object,
    service_identity,
    wait_for,
)
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess

pytestmark = pytest.mark.k8s
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


@pytest.fixture(scope="module")
def operator(
    local_cluster: LocalCluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess.for_cluster(local_cluster, tmp_path_factory.mktemp("operator"))
    yield process
    process.stop()


def test_the_trust_bundle_is_owned_by_the_identity_crd(
    operator: OperatorProcess, cluster_objects: Any
) -> None:
    """No one identity owns the bundle; the CRD does: removing the CRDs removes every
    bundle (garbage collection), and `helm uninstall` alone (CRDs kept) keeps them."""
    ns = cluster_objects.namespace("bundleowner")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
    cluster_objects.ready_identity(ns, "census")
    crd = client.ApiextensionsV1Api(cluster_objects.api).read_custom_resource_definition(
        "serviceidentities.jwtmesh.io"
    )

    def owners() -> list[tuple[str, str, str]]:
        bundle = cluster_objects.core.read_namespaced_config_map("jwtmesh-trust-bundle", ns)
        return [(o.kind, o.name, o.uid) for o in bundle.metadata.owner_references or []]

    wanted = [("CustomResourceDefinition", crd.metadata.name, crd.metadata.uid)]
    wait_for(lambda: owners() == wanted, 10, "the bundle owned by the CRD")


def test_identities_carry_no_finalizer_so_they_never_need_an_operator_to_go(
    operator: OperatorProcess, cluster_objects: Any
) -> None:
    """Without an operator (after `helm uninstall`) a finalizer would block the deletion of
    the identity, its namespace and the CRDs for ever. kopf's own daemon finalizer, left
    by an earlier operator, is removed."""
    ns = cluster_objects.namespace("nofinalizer")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
    earlier = service_identity("herald")
    earlier["metadata"]["finalizers"] = [KOPF_FINALIZER]
    create_object(cluster_objects.api, ns, "serviceidentities", earlier)

    def finalizers(name: str) -> list[str]:
        body = get_object(cluster_objects.api, ns, "serviceidentities", name) or {}
        return list(body.get("metadata", {}).get("finalizers") or [])

    for name in ("census", "herald"):
        cluster_objects.ready_identity(ns, name)
        wait_for(lambda n=name: not finalizers(n), 10, f"{name} without finalizers")
    delete_object(cluster_objects.api, ns, "serviceidentities", "herald")
    wait_for(
        lambda: get_object(cluster_objects.api, ns, "serviceidentities", "herald") is None,
        10,
        "herald deleted",
    )


def test_each_identity_gets_its_network_policy_owned_by_it(
    operator: OperatorProcess, cluster_objects: Any
) -> None:
    """The NetworkPolicy that admits the identity's Pods' ingress through Envoy only is
    written by the operator, owned by the identity (removed with it)."""
    ns = cluster_objects.namespace("netpol")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
    cluster_objects.ready_identity(ns, "census")
    networking = client.NetworkingV1Api(cluster_objects.api)

    def policy() -> Any:
        try:
            return networking.read_namespaced_network_policy("census-jwtmesh-inbound", ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    found = wait_for(policy, 10, "census's NetworkPolicy")
    assert found.spec.pod_selector.match_labels == {"jwtmesh.io/identity": "census"}
    ports = sorted(str(port.port) for rule in found.spec.ingress for port in rule.ports)
    assert ports == ["jwtmesh-inbound", "jwtmesh-metrics"]
    assert [o.kind for o in found.metadata.owner_references] == ["ServiceIdentity"]
