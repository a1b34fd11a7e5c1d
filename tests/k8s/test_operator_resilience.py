"""Two replicas, one acts; an operator killed again and again mid-rotation loses no key."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwtmesh.identity import parse_identity
from jwtmesh_testing.kubeapply import create_object, service_identity, wait_for
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess

pytestmark = pytest.mark.k8s
RETAIN = 31.0
FAST = {"rotation": {"period": "5s", "prePublish": "2s", "retain": "31s"}, "maxTokenLifetime": "1s"}


def reconciles(operator: OperatorProcess) -> int:
    text = operator.get("/metrics").decode()
    found = re.search(r"^jwtmesh_operator_reconciles_total (\d+)", text, re.MULTILINE)
    assert found is not None
    return int(found.group(1))


def ensure_peering_object(api: client.ApiClient) -> None:
    body = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": "jwtmesh"},
    }
    try:
        client.CustomObjectsApi(api).create_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", body
        )
    except ApiException as exc:
        if exc.status != 409:
            raise


def test_two_replicas_with_peering_only_one_acts(
    local_cluster: LocalCluster, cluster_objects: Any, tmp_path: Path
) -> None:
    ensure_peering_object(cluster_objects.api)
    first = OperatorProcess.for_cluster(local_cluster, tmp_path, peering=True, name="replica-a")
    second = OperatorProcess.for_cluster(local_cluster, tmp_path, peering=True, name="replica-b")
    try:
        replicas = [first, second]
        peering = client.CustomObjectsApi(cluster_objects.api)
        wait_for(
            lambda: (
                len(
                    peering.get_cluster_custom_object(
                        "kopf.dev", "v1", "clusterkopfpeerings", "jwtmesh"
                    ).get("status")
                    or {}
                )
                >= 2
            ),
            30,
            "both replicas registered as peers",
        )
        time.sleep(3)  # let the lower-priority replica notice and pause
        before = {id(r): reconciles(r) for r in replicas}
        ns = cluster_objects.namespace("ha")
        create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
        cluster_objects.ready_identity(ns, "census", timeout=30)
        time.sleep(2)
        worked = [r for r in replicas if reconciles(r) > before[id(r)]]
        assert len(worked) == 1, "exactly one replica acts"
        acting = worked[0]
        standby = second if acting is first else first

        acting.kill()  # the standby takes over once the dead peer's lease expires
        create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald"))
        cluster_objects.ready_identity(ns, "herald", timeout=120)
        assert reconciles(standby) > 0
    finally:
        first.stop()
        second.stop()
        # The Helm chart owns this object in real installs; leave the cluster as found.
        client.CustomObjectsApi(cluster_objects.api).delete_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", "jwtmesh"
        )


def test_an_operator_killed_mid_rotation_again_and_again_loses_no_key(
    local_cluster: LocalCluster, cluster_objects: Any, tmp_path: Path
) -> None:
    ns = cluster_objects.namespace("chaos")
    operator = OperatorProcess.for_cluster(local_cluster, tmp_path, name="chaos-0")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald", FAST))
    issuer = cluster_objects.ready_identity(ns, "herald")["status"]["issuer"]
    rng = random.Random(7)
    seen_signing: dict[str, float] = {}
    kills = 0
    deadline = time.time() + 30
    try:
        while time.time() < deadline:
            time.sleep(rng.uniform(0.3, 2.5))
            operator.kill()
            kills += 1
            data = cluster_objects.secret_data(ns, "herald-jwtmesh-key")
            identity = parse_identity(data["signing-keys.json"])
            now = time.time()
            signing = [k for k in identity.keys if k.signs_at(now)]
            pending = [k for k in identity.keys if k.activates_at > now]
            assert len(pending) <= 1, "never two successors: no key duplicated"
            for scheduled in signing:
                seen_signing[scheduled.key.kid] = now  # the last time it was seen signing
            # Killed again at a random moment: waiting for it to sync is not the point.
            operator = OperatorProcess.for_cluster(
                local_cluster, tmp_path, name=f"chaos-{kills}", wait_for="/healthz"
            )
        # Let it converge, then check that every key that signed is still published until
        # its retain (31 s) ends: it stopped signing at or after it was last seen signing.
        # (Not "every key ever": on a loaded machine the first ones may have left already.)
        time.sleep(3)

        def published() -> set[str]:
            kids = cluster_objects.bundle_kids(ns, issuer)
            due = {kid for kid, last in seen_signing.items() if time.time() < last + RETAIN - 1}
            return kids if kids >= due else set()

        kids = wait_for(published, 20, "every key that signed within its retain in the bundle")
        status = cluster_objects.identity(ns, "herald")["status"]
        assert status["activeKid"] in kids
        active = [k for k in status["keys"] if k["state"] == "Active"]
        assert len(active) == 1
        assert kills >= 8
        assert len(seen_signing) >= 3, "rotations happened while the operator was being killed"
    finally:
        operator.stop()
