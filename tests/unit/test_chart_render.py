"""The chart renders with `helm template`'s defaults (no --kube-version), keeps the webhook
certificate in one place, and passes injected resources and pull secrets through."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from jwtmesh_operator.injection import DEFAULT_RESOURCES, IdentityRef, InjectionSettings, inject
from jwtmesh_testing.localcluster import Binaries
from jwtmesh_testing.paths import CHART


def template(*sets: str) -> list[dict[str, Any]]:
    binaries = Binaries.locate()
    if binaries is None:
        pytest.skip("helm is not built yet (make binaries)")
    args = [arg for value in sets for arg in ("--set", value)]
    result = subprocess.run(
        [str(binaries.helm), "template", "demo", str(CHART), *args],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in documents if doc["kind"] == kind]
    return found


def test_helm_template_works_with_its_defaults() -> None:
    documents = template()
    secret = one(documents, "Secret")
    webhook = one(documents, "MutatingWebhookConfiguration")
    assert webhook["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    pod = one(documents, "Deployment")["spec"]["template"]
    assert "checksum/webhook-cert" in pod["metadata"]["annotations"]
    assert "imagePullSecrets" not in pod["spec"]
    assert not [a for a in pod["spec"]["containers"][0]["args"] if "resources" in a]


def test_cert_manager_makes_the_webhook_certificate_when_asked() -> None:
    documents = template("injection.certificate=certManager")
    kinds = {doc["kind"] for doc in documents}
    assert {"Certificate", "Issuer"} <= kinds
    assert "Secret" not in kinds
    webhook = one(documents, "MutatingWebhookConfiguration")
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        "default/demo-jwtmesh-webhook-tls"
    )
    assert "caBundle" not in webhook["webhooks"][0]["clientConfig"]
    assert "annotations" not in one(documents, "Deployment")["spec"]["template"]["metadata"]
    issued = template(
        "injection.certificate=certManager",
        "injection.certManager.issuerRef.name=corp-ca",
        "injection.certManager.issuerRef.kind=ClusterIssuer",
    )
    assert "Issuer" not in {doc["kind"] for doc in issued}
    assert one(issued, "Certificate")["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
    }


def test_pull_secrets_and_injected_resources_reach_the_operator() -> None:
    pod = one(
        template(
            "imagePullSecrets={regcred}",
            "injection.sidecarResources.limits.memory=512Mi",
            "injection.envoyResources.requests.cpu=100m",
        ),
        "Deployment",
    )["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    args = pod["containers"][0]["args"]
    assert '--sidecar-resources={"limits":{"memory":"512Mi"}}' in args
    assert '--envoy-resources={"requests":{"cpu":"100m"}}' in args


def test_injection_uses_the_configured_resources() -> None:
    pod = {
        "metadata": {},
        "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 8}]}]},
    }
    custom = {"limits": {"memory": "512Mi"}}
    settings = InjectionSettings("envoy", "jwtmesh", "bundle", sidecar_resources=custom)
    injected = inject(pod, IdentityRef("census", "census.a", "s"), settings)
    assert injected is not None
    resources = {c["name"]: c["resources"] for c in injected.containers if "resources" in c}
    assert resources == {"jwtmesh-sidecar": custom, "jwtmesh-envoy": dict(DEFAULT_RESOURCES)}
