"""The operator across control-plane faults: the API server gone for 30 s, etcd restarted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jwtmesh_testing.kubeapply import create_object, service_identity, wait_for
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess

pytestmark = [pytest.mark.k8s, pytest.mark.timing]


@pytest.fixture
def operator(
    local_cluster: LocalCluster, crds: list[str], tmp_path: Path
) -> Iterator[OperatorProcess]:
    process = OperatorProcess.for_cluster(local_cluster, tmp_path)
    yield process
    process.stop()


def kids(cluster_objects: Any, ns: str, names: list[str]) -> dict[str, str]:
    return {name: cluster_objects.identity(ns, name)["status"]["activeKid"] for name in names}


def test_the_operator_survives_30_s_without_an_api_server(
    local_cluster: LocalCluster, operator: OperatorProcess, cluster_objects: Any
) -> None:
    ns = cluster_objects.namespace("outage")
    names = ["a", "b", "c"]
    for name in names:
        create_object(cluster_objects.api, ns, "serviceidentities", service_identity(name))
    for name in names:
        cluster_objects.ready_identity(ns, name)
    before = kids(cluster_objects, ns, names)

    local_cluster.stop_apiserver()
    time.sleep(30)
    assert operator.process.popen.poll() is None, "the operator rides out the outage"
    local_cluster.start_apiserver()

    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("after"))
    cluster_objects.ready_identity(ns, "after", timeout=60)
    assert kids(cluster_objects, ns, names) == before, "no key lost or replaced"
    issuers = {
        name: cluster_objects.identity(ns, name)["status"]["issuer"] for name in [*names, "after"]
    }
    wait_for(
        lambda: all(cluster_objects.bundle_kids(ns, issuer) for issuer in issuers.values()),
        30,
        "every identity in the bundle",
    )


def test_the_operator_carries_on_after_etcd_restarts(
    local_cluster: LocalCluster, operator: OperatorProcess, cluster_objects: Any
) -> None:
    ns = cluster_objects.namespace("etcd")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("before"))
    first = cluster_objects.ready_identity(ns, "before")["status"]["activeKid"]
    local_cluster.restart_etcd()
    wait_for(
        lambda: create_object(
            cluster_objects.api, ns, "serviceidentities", service_identity("after")
        ),
        60,
        "the API server to write again",
    )
    cluster_objects.ready_identity(ns, "after", timeout=60)
    assert cluster_objects.identity(ns, "before")["status"]["activeKid"] == first
