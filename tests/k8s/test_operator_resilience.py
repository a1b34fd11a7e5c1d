"""Two replicas, one acts; an operator killed again and again mid-rotation loses no key."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwtmesh.identity import parse_identity
from jwtmesh_testing.chart import NAMESPACE
from jwtmesh_testing.kubeapply import create_object, service_identity, wait_for
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess

pytestmark = [pytest.mark.k8s, pytest.mark.timing]
RETAIN = 31.0
FAST = {"rotation": {"period": "5s", "prePublish": "2s", "retain": "31s"}, "maxTokenLifetime": "1s"}


def reconciles(operator: OperatorProcess) -> int:
    text = operator.get("/metrics").decode()
    found = re.search(r"^jwtmesh_operator_reconciles_total (\d+)", text, re.MULTILINE)
    assert found is not None
    return int(found.group(1))


def lease_holder(api: client.ApiClient) -> str | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease("jwtmesh-operator", NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    holder: str | None = lease.spec.holder_identity
    return holder


def test_two_replicas_one_acts_through_the_lease_and_the_other_takes_over(
    local_cluster: LocalCluster, cluster_objects: Any, tmp_path: Path
) -> None:
    api = cluster_objects.api
    first = OperatorProcess.for_cluster(local_cluster, tmp_path, leader_election=True, name="ha-a")
    second = OperatorProcess.for_cluster(local_cluster, tmp_path, leader_election=True, name="ha-b")
    replicas = [first, second]
    try:
        wait_for(lambda: lease_holder(api) is not None, 30, "a replica holds the Lease")
        holder = lease_holder(api)
        lease = client.CoordinationV1Api(api).read_namespaced_lease("jwtmesh-operator", NAMESPACE)
        owners = [(o.kind, o.name) for o in lease.metadata.owner_references or []]
        # Owned by the CRD, like the trust bundles: removing the CRDs removes it.
        assert owners == [("CustomResourceDefinition", "serviceidentities.jwtmesh.io")]
        answers = sorted(r.get("/readyz").decode().strip() for r in replicas)
        assert answers == ["ready", "standby"], "both are ready; one says it stands by"
        before = {id(r): reconciles(r) for r in replicas}
        ns = cluster_objects.namespace("ha")
        create_object(api, ns, "serviceidentities", service_identity("census"))
        cluster_objects.ready_identity(ns, "census", timeout=30)
        time.sleep(2)
        worked = [r for r in replicas if reconciles(r) > before[id(r)]]
        assert len(worked) == 1, "exactly one replica acts"
        acting = worked[0]
        standby = second if acting is first else first

        # The standing-by replica indexes everything too: its JWKS has the new key.
        census_jwks = f"/ns/{ns}/census/jwks.json"

        def same_keys() -> bool:
            try:
                keys = json.loads(standby.get(census_jwks))["keys"]
            except OSError:  # 404 until the standby has indexed the identity
                return False
            return bool(keys) and keys == json.loads(acting.get(census_jwks))["keys"]

        wait_for(same_keys, 10, "the standby serves the acting replica's keys")

        acting.kill()  # no release: the standby takes over once the Lease expires (15 s)
        create_object(api, ns, "serviceidentities", service_identity("herald"))
        cluster_objects.ready_identity(ns, "herald", timeout=60)
        assert reconciles(standby) > 0
        assert lease_holder(api) not in (None, holder)
        assert standby.get("/readyz").decode().strip() == "ready"
    finally:
        first.stop()
        second.stop()
    assert lease_holder(api) is None, "a replica stopped cleanly gives the Lease up"


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
