"""One tenant's flood of identities does not hold back another namespace's, against a real
kube-apiserver: the scheduler's namespaces take turns for its reconcile slots
(fairqueue.py), and EC keys are made at once instead of queueing behind RSA keys in the
keygen threads (reconcile._new_key).

The flood is FLOOD RSA identities applied in one namespace, each key a tenth of a second
or more of one of two keygen threads; then one ES256 identity in another namespace. It
must be Ready while most of the flood still waits. Before, it came after every one of
them: the scheduler served what was due in the order it came, and its key queued behind
the twenty RSA keys its reconcile slots had started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from jwtmesh_testing.kubeapply import create_object, service_identity
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess

pytestmark = [pytest.mark.k8s, pytest.mark.slow]  # ~20 s, most of it the flood's keys
FLOOD = 120
RSA = {"algorithm": "RS256", "keySize": 2048}


def ready_count(api: client.ApiClient, namespace: str) -> int:
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "jwtmesh.io", "v1alpha1", namespace, "serviceidentities"
    )
    return sum(
        any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        for conditions in (
            (item.get("status") or {}).get("conditions", []) for item in listed["items"]
        )
    )


def test_another_namespaces_identity_is_ready_while_a_flood_still_waits(
    local_cluster: LocalCluster, crds: list[str], cluster_objects: Any, tmp_path: Path
) -> None:
    flood, shop = cluster_objects.namespace("flood"), cluster_objects.namespace("fairshop")
    operator = OperatorProcess.for_cluster(
        local_cluster, tmp_path, extra=[f"--namespace={flood}", f"--namespace={shop}"]
    )
    try:
        for n in range(FLOOD):
            create_object(
                cluster_objects.api, flood, "serviceidentities", service_identity(f"svc{n}", RSA)
            )
        create_object(cluster_objects.api, shop, "serviceidentities", service_identity("cart"))
        cluster_objects.ready_identity(shop, "cart", timeout=120)
        flood_ready = ready_count(cluster_objects.api, flood)
        assert flood_ready <= FLOOD // 2, f"{flood_ready} of the flood were Ready before it"
        # The flood is served too, in its turns (and not refused: a quota matter).
        cluster_objects.ready_identity(flood, f"svc{FLOOD - 1}", timeout=180)
    finally:
        operator.stop()
