"""The tenant boundary for Pods and endpoints: an identity is bound to ServiceAccounts, its
key reaches the sidecar only, the operator has the chart's permissions and no more, and
the JWKS endpoints serve full issuers only. (Names, keys and revocations:
test_trust_boundaries.py; requests: test_trust_boundaries_requests.py.)"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from kubernetes import client

from jwtmesh_testing import webhook
from jwtmesh_testing.kubeapply import (
    create_cluster_object,
    create_object,
    delete_cluster_object,
    service_identity,
    wait_for,
)
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess
from jwtmesh_testing.webhook import create_pod, pod

pytestmark = pytest.mark.k8s
TRUST_DOMAIN = "jwtmesh.cluster.local"
POLICY_BINDING = "jwtmesh-jwtmesh-tenancy"


# --- 7. the identity is bound to ServiceAccounts ----------------------------------------------


def refused_pod(cluster_objects: Any, ns: str, body: dict[str, Any]) -> str:
    status, message = webhook.refused_pod(cluster_objects.core, ns, body)
    assert status == 403, "a refused Pod is Forbidden, not an internal error"
    return message


def test_a_pod_of_another_service_account_cannot_take_the_identity(
    cluster_objects: Any, prod: Any
) -> None:
    labels = {"jwtmesh.io/identity": "payments"}
    message = refused_pod(
        cluster_objects, prod.namespace, pod("thief", labels, service_account="default")
    )
    assert (
        "ServiceAccount 'default' may not use ServiceIdentity 'payments' (allowed: payments)"
        in message
    )
    create_pod(cluster_objects.core, prod.namespace, pod("owner", labels))


def test_the_service_accounts_an_identity_allows_are_its_own_choice(
    cluster_objects: Any, dev: str
) -> None:
    spec = {"serviceAccounts": ["api", "worker"]}
    create_object(cluster_objects.api, dev, "serviceidentities", service_identity("svc", spec))
    cluster_objects.ready_identity(dev, "svc")
    labels = {"jwtmesh.io/identity": "svc"}
    create_pod(cluster_objects.core, dev, pod("worker-0", labels, service_account="worker"))
    message = refused_pod(cluster_objects, dev, pod("svc-0", labels, service_account="svc"))
    assert "(allowed: api, worker)" in message


def test_a_host_network_pod_is_refused(cluster_objects: Any, prod: Any) -> None:
    body = pod("on-the-node", {"jwtmesh.io/identity": "payments"}, host_network=True)
    assert "hostNetwork" in refused_pod(cluster_objects, prod.namespace, body)


def test_a_pod_whose_app_mounts_the_key_volume_is_refused(cluster_objects: Any, prod: Any) -> None:
    """Naming the volume injection adds would hand the app the private keys."""
    body = pod("peek", {"jwtmesh.io/identity": "payments"})
    body["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "jwtmesh-identity", "mountPath": "/keys"}
    ]
    message = refused_pod(cluster_objects, prod.namespace, body)
    assert "mounts 'jwtmesh-identity', the identity's private keys" in message


def test_the_private_key_is_mode_0400_and_mounted_in_the_sidecar_only(
    cluster_objects: Any, prod: Any
) -> None:
    created = create_pod(
        cluster_objects.core, prod.namespace, pod("keys", {"jwtmesh.io/identity": "payments"})
    )
    volumes = {volume.name: volume for volume in created.spec.volumes}
    assert volumes["jwtmesh-identity"].secret.default_mode == 0o400
    assert created.spec.security_context.fs_group == 65532, "the kubelet gives the group read"
    mounting = [
        container.name
        for container in created.spec.containers
        if any(m.name == "jwtmesh-identity" for m in container.volume_mounts or [])
    ]
    assert mounting == ["jwtmesh-sidecar"]


# --- the operator's own permissions ----------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "resource", "group"),
    [
        ("delete", "secrets", ""),
        ("list", "pods", ""),
        ("create", "clusteridentitygrants", "jwtmesh.io"),
        ("create", "clustertokenrevocations", "jwtmesh.io"),
        ("update", "mutatingwebhookconfigurations", "admissionregistration.k8s.io"),
    ],
)
def test_the_operator_runs_with_the_charts_rbac_and_nothing_more(
    local_cluster: LocalCluster, verb: str, resource: str, group: str
) -> None:
    from jwtmesh_testing.chart import operator_kubeconfig
    from jwtmesh_testing.kubeapply import api_client

    api = api_client(operator_kubeconfig(local_cluster))
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, resource=resource, group=group
                )
            )
        )
    )
    assert review.status.allowed is False


# --- 8. the JWKS and discovery endpoints ----------------------------------------------------


def get_json(operator: OperatorProcess, path: str, host: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{operator.port}{path}", headers={"host": host}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_jwks_endpoints_match_the_full_issuer_and_never_trust_the_host_header(
    tenancy_operator: OperatorProcess, cluster_objects: Any, prod: Any, dev: str
) -> None:
    """An issuer of another origin with the same path (granted, so it is published) is not
    served at prod's path, and jwks_uri comes from the configured URL, not from Host."""
    look_alike = f"https://evil.example/ns/{prod.namespace}/payments"
    grant = f"look-alike-{dev}"
    create_object(cluster_objects.api, dev, "serviceidentities", service_identity("evil"))
    create_cluster_object(
        cluster_objects.api,
        "clusteridentitygrants",
        {
            "apiVersion": "jwtmesh.io/v1alpha1",
            "kind": "ClusterIdentityGrant",
            "metadata": {"name": grant},
            "spec": {"identity": {"namespace": dev, "name": "evil"}, "issuer": look_alike},
        },
    )
    try:
        wait_for(lambda: cluster_objects.bundle_kids(dev, look_alike), 20, "the granted issuer")
        path = f"/ns/{prod.namespace}/payments"
        keys = get_json(tenancy_operator, f"{path}/jwks.json", "evil.example")["keys"]
        assert {key["kid"] for key in keys} == set(prod.kids)
        discovery = get_json(
            tenancy_operator, f"{path}/.well-known/openid-configuration", "evil.example"
        )
        assert discovery == {
            "issuer": prod.issuer,
            "jwks_uri": f"{prod.issuer}/jwks.json",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }
        assert prod.issuer.startswith(f"https://{TRUST_DOMAIN}/")
    finally:
        delete_cluster_object(cluster_objects.api, "clusteridentitygrants", grant)
