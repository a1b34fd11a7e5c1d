"""Apply the repository's CRDs and custom objects with the `kubernetes` client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from jwtmesh_testing.paths import CRD_DIR

GROUP, VERSION = "jwtmesh.io", "v1alpha1"


def api_client(kubeconfig: Path) -> client.ApiClient:
    """An API client for one kubeconfig file (not the process-wide default)."""
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    return api


def install_crds(api: client.ApiClient, crd_dir: Path = CRD_DIR, timeout: float = 30) -> list[str]:
    """Create or replace every CRD in crds/, then wait until each is Established."""
    extensions = client.ApiextensionsV1Api(api)
    names = []
    paths = sorted(crd_dir.glob("*.yaml"))
    if not paths:
        raise FileNotFoundError(f"no CRD files in {crd_dir}")
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            if not document:
                continue
            name = document["metadata"]["name"]
            names.append(name)
            try:
                extensions.create_custom_resource_definition(document)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                current: Any = extensions.read_custom_resource_definition(name)
                document["metadata"]["resourceVersion"] = current.metadata.resource_version
                extensions.replace_custom_resource_definition(name, document)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd: Any = extensions.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (crd.status.conditions or [])}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not established")
            time.sleep(0.1)
    return names


def create_namespace(
    api: client.ApiClient, name: str, labels: dict[str, str] | None = None
) -> None:
    try:
        client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise


def service_identity(
    name: str, spec: dict[str, Any] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ServiceIdentity",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": spec or {},
    }


def create_object(
    api: client.ApiClient, namespace: str, plural: str, body: dict[str, Any]
) -> dict[str, Any]:
    created = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, body
    )
    return cast(dict[str, Any], created)


def create_cluster_object(api: client.ApiClient, plural: str, body: dict[str, Any]) -> None:
    """A cluster-scoped custom object (ClusterIdentityGrant, ClusterTokenRevocation)."""
    client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, plural, body)


def delete_cluster_object(api: client.ApiClient, plural: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_cluster_custom_object(GROUP, VERSION, plural, name)


def get_object(
    api: client.ApiClient, namespace: str | None, plural: str, name: str
) -> dict[str, Any] | None:
    """A custom object; namespace None for a cluster-scoped one. None if it does not exist."""
    objects = client.CustomObjectsApi(api)
    try:
        if namespace is None:
            found = objects.get_cluster_custom_object(GROUP, VERSION, plural, name)
        else:
            found = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        return cast(dict[str, Any], found)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def patch_object(
    api: client.ApiClient, namespace: str, plural: str, name: str, patch: dict[str, Any]
) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name, patch
    )


def delete_object(api: client.ApiClient, namespace: str, plural: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll until predicate() returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except ApiException as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} ({last_error})")
