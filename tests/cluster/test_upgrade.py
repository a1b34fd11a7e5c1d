"""`helm upgrade` while labeled Pods are being created: none may be refused.

Two upgrades: one with the same values (it used to generate a new webhook certificate,
which the API server trusted at once and the replicas served only after their restart),
and one that changes the Pod template, so both replicas are replaced one by one (old
replicas closing their port while still behind the webhook Service).
"""

from __future__ import annotations

import time

import pytest

from jwtmesh_testing.realcluster.admission import AdmissionLoop, labeled_pod
from jwtmesh_testing.realcluster.clusterapi import ClusterApi
from jwtmesh_testing.realcluster.daemons import say
from jwtmesh_testing.realcluster.failover import OPERATOR_SELECTOR
from jwtmesh_testing.realcluster.workloads import (
    DEMO_NAMESPACE,
    RELEASE_NAMESPACE,
    Kube,
    LocalImages,
)

pytestmark = pytest.mark.cluster


def webhook_certificate(api: ClusterApi) -> str:
    secret = api.core.read_namespaced_secret("jwtmesh-jwtmesh-webhook-tls", RELEASE_NAMESPACE)
    return str(secret.data["tls.crt"])  # type: ignore[union-attr, index]


def test_helm_upgrade_refuses_no_labeled_pod(
    herald_census: Kube, api: ClusterApi, images: LocalImages
) -> None:
    pod = labeled_pod("herald", "herald", images.demo)
    certificate = webhook_certificate(api)
    replicas = {p.metadata.name for p in api.pods(RELEASE_NAMESPACE, OPERATOR_SELECTOR)}
    started = time.monotonic()
    with AdmissionLoop(api, DEMO_NAMESPACE, pod, interval=0.2) as loop:
        herald_census.install_jwtmesh(images)  # the same values
        herald_census.install_jwtmesh(images, "resources.requests.cpu=120m")  # a new template
        herald_census.kubectl(
            "-n", RELEASE_NAMESPACE, "rollout", "status", "deploy/jwtmesh-jwtmesh", "--timeout=180s"
        )
        time.sleep(15)  # the old replicas' preStop (5 s) and shutdown, with the loop still on
    say(f"two helm upgrades ({time.monotonic() - started:.0f} s): {loop.tally}")
    assert loop.tally.refusals == 0, loop.tally.refused
    assert loop.tally.attempts > 50
    assert webhook_certificate(api) == certificate
    now = {p.metadata.name for p in api.pods(RELEASE_NAMESPACE, OPERATOR_SELECTOR)}
    assert not now & replicas, "the second upgrade replaced both replicas"
