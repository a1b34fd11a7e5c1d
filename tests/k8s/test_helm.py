"""The Helm chart: lint, template, and a real install into the local kube-apiserver."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwtmesh_testing.chart import render
from jwtmesh_testing.localcluster import LocalCluster

pytestmark = pytest.mark.k8s
CHART = Path(__file__).resolve().parents[2] / "charts" / "jwtmesh"
CRDS = Path(__file__).resolve().parents[2] / "crds"


def helm(cluster: LocalCluster, *args: str) -> str:
    result = subprocess.run(
        [str(cluster.binaries.helm), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_the_chart_lints_clean(local_cluster: LocalCluster) -> None:
    out = helm(local_cluster, "lint", str(CHART), "--strict")
    assert "0 chart(s) failed" in out


def test_the_chart_crds_are_the_repository_crds(local_cluster: LocalCluster) -> None:
    """One source of truth: charts/jwtmesh/crds is crds/."""
    chart_crds = CHART / "crds"
    assert chart_crds.resolve() == CRDS.resolve()


def test_the_chart_renders_every_object(local_cluster: LocalCluster) -> None:
    rendered = helm(
        local_cluster, "template", "demo", str(CHART), "--include-crds", "--kube-version", "1.34.4"
    )
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(rendered) if doc)
    for kind in (
        "Deployment",
        "ClusterRole",
        "MutatingWebhookConfiguration",
        "PodDisruptionBudget",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ):
        assert kind in kinds
    # ServiceIdentity, TokenRevocation, ClusterIdentityGrant, ClusterTokenRevocation.
    assert kinds.count("CustomResourceDefinition") == 4
    deployment = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert deployment["spec"]["replicas"] == 2


def rules_by_kind(documents: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(kind, namespace) of each Role/ClusterRole → the resources it grants."""
    grants: dict[tuple[str, str], set[str]] = {}
    for doc in documents:
        if doc["kind"] in ("Role", "ClusterRole"):
            key = (doc["kind"], doc["metadata"].get("namespace", ""))
            for rule in doc["rules"]:
                grants.setdefault(key, set()).update(rule["resources"])
    return grants


def test_with_watch_namespaces_secrets_are_granted_by_namespaced_roles_only(
    local_cluster: LocalCluster,
) -> None:
    everywhere = rules_by_kind(render(local_cluster))
    assert "secrets" in everywhere[("ClusterRole", "")]
    scoped = rules_by_kind(render(local_cluster, "watchNamespaces={shop,billing}"))
    assert "secrets" not in scoped[("ClusterRole", "")]
    assert "configmaps" not in scoped[("ClusterRole", "")]
    for ns in ("shop", "billing"):
        assert {"secrets", "configmaps"} <= scoped[("Role", ns)]


def test_values_are_validated_by_the_schema(local_cluster: LocalCluster) -> None:
    result = subprocess.run(
        [
            str(local_cluster.binaries.helm),
            "template",
            "demo",
            str(CHART),
            "--set",
            "replicaCount=zero",
            "--kube-version",
            "1.34.4",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "replicaCount" in result.stderr


def test_helm_install_is_accepted_by_the_api_server_and_uninstalls_cleanly(
    local_cluster: LocalCluster, kube_api: client.ApiClient
) -> None:
    helm(
        local_cluster,
        "install",
        "demo",
        str(CHART),
        "--namespace",
        "jwtmesh-system",
        "--create-namespace",
    )
    try:
        apps = client.AppsV1Api(kube_api)
        deployment: Any = apps.read_namespaced_deployment("demo-jwtmesh", "jwtmesh-system")
        assert deployment.spec.replicas == 2
        webhook: Any = client.AdmissionregistrationV1Api(
            kube_api
        ).read_mutating_webhook_configuration("demo-jwtmesh-injector")
        assert webhook.webhooks[0].object_selector.match_expressions[0].key == "jwtmesh.io/identity"
        assert "demo" in helm(local_cluster, "list", "--namespace", "jwtmesh-system")
        # An upgrade keeps the webhook's certificate, so it does not restart the operator.
        core = client.CoreV1Api(kube_api)
        before = core.read_namespaced_secret("demo-jwtmesh-webhook-tls", "jwtmesh-system").data
        template = deployment.spec.template.metadata.annotations
        helm(
            local_cluster,
            "upgrade",
            "demo",
            str(CHART),
            "--namespace",
            "jwtmesh-system",
            "--set",
            "logLevel=debug",
        )
        after = core.read_namespaced_secret("demo-jwtmesh-webhook-tls", "jwtmesh-system").data
        assert after == before
        upgraded: Any = apps.read_namespaced_deployment("demo-jwtmesh", "jwtmesh-system")
        assert upgraded.spec.template.metadata.annotations == template
        assert "--log-level=debug" in upgraded.spec.template.spec.containers[0].args
        webhook = client.AdmissionregistrationV1Api(kube_api).read_mutating_webhook_configuration(
            "demo-jwtmesh-injector"
        )
        assert webhook.webhooks[0].client_config.ca_bundle == before["ca.crt"]
    finally:
        helm(local_cluster, "uninstall", "demo", "--namespace", "jwtmesh-system", "--wait")
    with pytest.raises(ApiException) as gone:
        client.AppsV1Api(kube_api).read_namespaced_deployment("demo-jwtmesh", "jwtmesh-system")
    assert gone.value.status == 404
    with pytest.raises(ApiException):
        client.AdmissionregistrationV1Api(kube_api).read_mutating_webhook_configuration(
            "demo-jwtmesh-injector"
        )


def test_helm_upgrade_keeps_the_webhook_certificate(
    local_cluster: LocalCluster, kube_api: client.ApiClient
) -> None:
    """A new certificate at each upgrade reached the webhook configuration at once and the
    running replicas only after their restart: on the real cluster 26 labeled Pods were
    refused in the 3 s between. The upgrade keeps the certificate the release has."""
    install = ["--namespace", "certs", "--create-namespace"]
    core, admission = client.CoreV1Api(kube_api), client.AdmissionregistrationV1Api(kube_api)

    def certificate() -> tuple[str, str]:
        secret: Any = core.read_namespaced_secret("keep-jwtmesh-webhook-tls", "certs")
        webhook: Any = admission.read_mutating_webhook_configuration("keep-jwtmesh-injector")
        return secret.data["tls.crt"], webhook.webhooks[0].client_config.ca_bundle

    helm(local_cluster, "install", "keep", str(CHART), *install)
    try:
        first = certificate()
        assert (
            first[1]
            == core.read_namespaced_secret("keep-jwtmesh-webhook-tls", "certs").data["ca.crt"]
        )
        helm(local_cluster, "upgrade", "keep", str(CHART), *install, "--set", "replicaCount=3")
        assert certificate() == first
    finally:
        helm(local_cluster, "uninstall", "keep", "--namespace", "certs", "--wait")
