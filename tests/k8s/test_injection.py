"""The real kube-apiserver calls the injection webhook served by the operator."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from jwtmesh_testing import webhook
from jwtmesh_testing.kubeapply import create_object, service_identity
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess
from jwtmesh_testing.processes import envoy_binary
from jwtmesh_testing.webhook import pod

pytestmark = pytest.mark.k8s


@pytest.fixture(scope="module")
def injecting_operator(
    local_cluster: LocalCluster,
    kube_api: client.ApiClient,
    crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    with webhook.injecting_operator(
        local_cluster, kube_api, tmp_path_factory.mktemp("injector")
    ) as process:
        yield process


def create_pod(cluster_objects: Any, namespace: str, body: dict[str, Any]) -> Any:
    return webhook.create_pod(cluster_objects.core, namespace, body)


def test_a_labeled_pod_gets_envoy_the_sidecar_and_the_volumes(
    injecting_operator: OperatorProcess, cluster_objects: Any, tmp_path: Path
) -> None:
    ns = cluster_objects.namespace("inject")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
    cluster_objects.ready_identity(ns, "census")
    created = create_pod(
        cluster_objects,
        ns,
        pod(
            "census-0",
            {"jwtmesh.io/identity": "census"},
            {"jwtmesh.io/egress-destinations": "billing.default.svc:8080=billing.default"},
        ),
    )
    stored = cluster_objects.core.read_namespaced_pod("census-0", ns)
    names = [c.name for c in stored.spec.containers]
    assert names == ["app", "jwtmesh-envoy", "jwtmesh-sidecar"]
    assert created.metadata.annotations["jwtmesh.io/injected"] == "true"
    volumes = {v.name: v for v in stored.spec.volumes}
    sources = [source.config_map for source in volumes["jwtmesh-bundle"].projected.sources]
    assert [(s.name, s.optional) for s in sources] == [
        ("jwtmesh-trust-bundle-manifest", True),
        *((f"jwtmesh-trust-bundle-{i}", True) for i in range(16)),
        ("jwtmesh-trust-bundle", True),
    ], "the API server admits the projected volume as injected"
    assert volumes["jwtmesh-identity"].secret.secret_name == "census-jwtmesh-key"
    assert volumes["jwtmesh-policy"].config_map.name == "census-jwtmesh-policy"
    sidecar = stored.spec.containers[2]
    assert sidecar.image == "jwtmesh:test"
    assert sidecar.args[sidecar.args.index("--identity") + 1] == f"census.{ns}"
    assert sidecar.security_context.read_only_root_filesystem is True
    envoy = stored.spec.containers[1]
    bootstrap = json.loads(envoy.args[envoy.args.index("--config-yaml") + 1])
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    app_address = clusters["app"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"
    ]
    assert app_address["socket_address"]["port_value"] == 8080
    assert clusters["egress_0"]["type"] == "LOGICAL_DNS"
    # The real Envoy accepts the injected configuration.
    config_file = tmp_path / "injected-envoy.json"
    config_file.write_text(json.dumps(bootstrap))
    validated = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config_file)],
        capture_output=True,
        text=True,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert {listener["name"] for listener in bootstrap["static_resources"]["listeners"]} == {
        "inbound",
        "egress",
    }


def test_an_unlabeled_pod_is_untouched(
    injecting_operator: OperatorProcess, cluster_objects: Any
) -> None:
    ns = cluster_objects.namespace("plain")
    create_pod(cluster_objects, ns, pod("plain-0"))
    stored = cluster_objects.core.read_namespaced_pod("plain-0", ns)
    assert [c.name for c in stored.spec.containers] == ["app"]
    assert "jwtmesh.io/injected" not in (stored.metadata.annotations or {})


def test_a_pod_naming_an_unknown_identity_is_refused_with_a_reason(
    injecting_operator: OperatorProcess, cluster_objects: Any
) -> None:
    ns = cluster_objects.namespace("unknown")
    body = pod("ghost-0", {"jwtmesh.io/identity": "ghost"})
    status, message = webhook.refused_pod(cluster_objects.core, ns, body)
    assert status == 403, "a refused Pod is Forbidden, not an internal error"
    assert "no ServiceIdentity 'ghost'" in message


def test_a_pod_with_an_unreadable_annotation_is_a_bad_request(
    injecting_operator: OperatorProcess, cluster_objects: Any
) -> None:
    ns = cluster_objects.namespace("badnote")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
    labels, notes = {"jwtmesh.io/identity": "census"}, {"jwtmesh.io/authz-mode": "pigeon"}
    status, message = webhook.refused_pod(cluster_objects.core, ns, pod("pigeon-0", labels, notes))
    assert status == 400, "the Pod is refused for its own input"
    assert "jwtmesh.io/authz-mode must be http or grpc" in message


def test_a_pod_is_never_injected_twice(
    injecting_operator: OperatorProcess, cluster_objects: Any
) -> None:
    ns = cluster_objects.namespace("twice")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
    cluster_objects.ready_identity(ns, "census")
    body = pod("twice-0", {"jwtmesh.io/identity": "census"})
    body["spec"]["containers"].append({"name": "jwtmesh-sidecar", "image": "jwtmesh:already"})
    create_pod(cluster_objects, ns, body)
    stored = cluster_objects.core.read_namespaced_pod("twice-0", ns)
    assert [c.name for c in stored.spec.containers] == ["app", "jwtmesh-sidecar"]
