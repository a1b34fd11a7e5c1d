"""A real etcd + kube-apiserver + kube-controller-manager for the whole session."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from jwtmesh_testing.kubeapply import (
    create_namespace,
    create_object,
    delete_object,
    get_object,
    install_crds,
    service_identity,
    wait_for,
)
from jwtmesh_testing.localcluster import Binaries, LocalCluster, LocalClusterError
from jwtmesh_testing.operator_process import OperatorProcess
from jwtmesh_testing.webhook import injecting_operator

_binaries: Binaries | LocalClusterError | None = None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find) the binaries once, before the first test, if a test needs the cluster.

    Here, not in the fixture, because a cold build takes longer than the per-test timeout
    (pytest-timeout counts fixture setup); its progress is shown live, uncaptured.
    """
    global _binaries
    needs_cluster = any("local_cluster" in getattr(i, "fixturenames", ()) for i in session.items)
    if not needs_cluster or session.config.option.collectonly:
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    uncaptured = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with uncaptured:
        try:
            _binaries = Binaries.ensure()
        except LocalClusterError as exc:
            _binaries = exc


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One real control plane (etcd, kube-apiserver, kube-controller-manager) per session."""
    if isinstance(_binaries, LocalClusterError):
        pytest.fail(f"the control-plane binaries could not be built: {_binaries}")
    binaries = _binaries or Binaries.ensure()
    with LocalCluster(tmp_path_factory.mktemp("cluster"), binaries) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kube_api(local_cluster: LocalCluster) -> Iterator[client.ApiClient]:
    """An admin API client for the local cluster (its own, not the process-wide default)."""
    api = config.new_client_from_config(config_file=str(local_cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def crds(kube_api: client.ApiClient) -> list[str]:
    return install_crds(kube_api)


@pytest.fixture(scope="session")
def cluster_objects(kube_api: client.ApiClient, crds: list[str]) -> ClusterObjects:
    return ClusterObjects(kube_api)


class ClusterObjects:
    """Reads the tests need, in one place: Secrets, bundles, identities, events."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)

    def namespace(self, prefix: str, labels: dict[str, str] | None = None) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        create_namespace(self.api, name, labels)
        return name

    def identity(self, namespace: str, name: str) -> dict[str, Any]:
        found = get_object(self.api, namespace, "serviceidentities", name)
        assert found is not None
        return found

    def custom(self, namespace: str | None, plural: str, name: str) -> dict[str, Any]:
        found = get_object(self.api, namespace, plural, name)
        assert found is not None, f"{plural} {namespace}/{name} does not exist"
        return found

    def delete_identity(self, namespace: str, name: str) -> None:
        delete_object(self.api, namespace, "serviceidentities", name)

    def ready_identity(self, namespace: str, name: str, timeout: float = 30) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            body = get_object(self.api, namespace, "serviceidentities", name)
            conditions = (body or {}).get("status", {}).get("conditions", [])
            ok = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            return body if ok else None

        result: dict[str, Any] = wait_for(ready, timeout, f"{namespace}/{name} to be Ready")
        return result

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def bundle(self, namespace: str) -> dict[str, Any] | None:
        try:
            cm = self.core.read_namespaced_config_map("jwtmesh-trust-bundle", namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        document: dict[str, Any] = json.loads(cm.data["bundle.json"])
        return document

    def bundle_kids(self, namespace: str, issuer: str) -> set[str]:
        document = self.bundle(namespace) or {"issuers": {}}
        entry = document["issuers"].get(issuer)
        return {k["kid"] for k in entry["jwks"]["keys"]} if entry else set()

    def await_a_publish(self, *namespaces: str) -> None:
        """Returns once each namespace's bundle holds something that happened after the call:
        a new identity in each namespace (which also gives it a bundle), its key published.
        A check that nothing changed in a bundle is made after this, never after a sleep
        (a slow publish would make the sleep's check pass without looking at anything)."""
        pending: dict[str, tuple[str, str]] = {}
        for ns in namespaces:
            marker = f"marker-{uuid.uuid4().hex[:6]}"
            create_object(self.api, ns, "serviceidentities", service_identity(marker))
            status = self.ready_identity(ns, marker)["status"]
            pending[ns] = (status["issuer"], status["activeKid"])

        def published_everywhere() -> bool:
            for ns, (issuer, kid) in list(pending.items()):
                if kid in self.bundle_kids(ns, issuer):
                    del pending[ns]
            return not pending

        wait_for(published_everywhere, 30, f"a publish after now in {namespaces}")

    def event_reasons(self, namespace: str, name: str) -> set[str]:
        events = self.core.list_namespaced_event(namespace).items
        return {e.reason for e in events if e.involved_object.name == name}


# --- the tenant boundary (test_trust_boundaries*.py) -----------------------------------------

TRUST_DOMAIN = "jwtmesh.cluster.local"


@pytest.fixture(scope="module")
def tenancy_operator(
    local_cluster: LocalCluster,
    kube_api: client.ApiClient,
    crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """One operator, under the chart's RBAC, serving the injection webhook too."""
    with injecting_operator(local_cluster, kube_api, tmp_path_factory.mktemp("tenancy")) as op:
        yield op


@dataclass(frozen=True)
class Prod:
    namespace: str
    issuer: str
    audience: str
    kids: frozenset[str]


@pytest.fixture
def prod(tenancy_operator: OperatorProcess, cluster_objects: Any) -> Prod:
    """The victim: prod/payments, Ready, its keys in the bundle."""
    ns = cluster_objects.namespace("prod")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("payments"))
    status = cluster_objects.ready_identity(ns, "payments")["status"]
    kids = wait_for(lambda: cluster_objects.bundle_kids(ns, status["issuer"]), 10, "published")
    return Prod(ns, status["issuer"], status["audience"], frozenset(kids))


@pytest.fixture
def dev(tenancy_operator: OperatorProcess, cluster_objects: Any) -> str:
    """The attacker's namespace."""
    return str(cluster_objects.namespace("dev"))
