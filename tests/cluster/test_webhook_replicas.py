"""Every operator replica answers the injection webhook, the standing-by one included: the
API server sends a Pod to whichever replica its connection leads to (it keeps one open), so
both must admit a Pod of an identity created after they started. The first real install,
with the webhook reading kopf's index, had the standing-by replica refuse 6 of 6."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
import yaml

from jwtmesh_testing.realcluster.admission import labeled_pod
from jwtmesh_testing.realcluster.clusterapi import ClusterApi
from jwtmesh_testing.realcluster.daemons import say
from jwtmesh_testing.realcluster.failover import OPERATOR_SELECTOR
from jwtmesh_testing.realcluster.workloads import RELEASE_NAMESPACE, Kube, LocalImages

pytestmark = pytest.mark.cluster
NAMESPACE = "late"


def review(pod: dict[str, Any]) -> dict[str, Any]:
    """The AdmissionReview the API server sends for a Pod's creation (as a dry run; the
    API server has set the object's namespace by then)."""
    pods = {"group": "", "version": "v1", "resource": "pods"}
    pod = {**pod, "metadata": {**pod["metadata"], "namespace": NAMESPACE}}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": pods,
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": pods,
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {"username": "tests/cluster"},
            "object": pod,
            "dryRun": True,
        },
    }


def ask(address: str, context: ssl.SSLContext, pod: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"https://{address}:9443/inject",
        data=json.dumps(review(pod)).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        response: dict[str, Any] = json.loads(answer.read())["response"]
    return response


def test_every_replica_admits_pods_of_an_identity_created_after_it_started(
    herald_census: Kube, api: ClusterApi, images: LocalImages
) -> None:
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "jwtmesh.io/v1alpha1",
            "kind": "ServiceIdentity",
            "metadata": {"name": "late", "namespace": NAMESPACE},
        },
    ]
    secret: Any = api.core.read_namespaced_secret("jwtmesh-jwtmesh-webhook-tls", RELEASE_NAMESPACE)
    context = ssl.create_default_context(cadata=base64.b64decode(secret.data["ca.crt"]).decode())
    context.check_hostname = False  # the certificate names the Service; we call Pod IPs
    pod = labeled_pod("late", "late", images.demo)
    unknown = labeled_pod("not-there", "not-there", images.demo)
    acting = api.acting_operator(RELEASE_NAMESPACE)
    try:
        herald_census.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
        answers = {}
        for replica in api.pods(RELEASE_NAMESPACE, OPERATOR_SELECTOR):
            role = "acting" if replica.metadata.name == acting else "standing by"
            address = replica.status.pod_ip
            answers[role] = (ask(address, context, pod), ask(address, context, unknown))
    finally:
        herald_census.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
    allowed = {role: [answer["allowed"] for answer in both] for role, both in answers.items()}
    say(f"webhook answers per replica (known identity, unknown one): {allowed}")
    assert set(answers) == {"acting", "standing by"}
    for role, (known, missing) in answers.items():
        assert known["allowed"], (role, known)
        assert known.get("patch"), (role, "admitted without the sidecars")
        assert not missing["allowed"], (role, missing)
        assert "no ServiceIdentity 'not-there'" in missing["status"]["message"]


def test_every_replica_reads_its_containers_memory_limit(
    herald_census: Kube, api: ClusterApi
) -> None:
    """headroom.py reads the cgroup of a real container: the chart's default limit (256Mi),
    and a restart estimate that fits under it for this small mesh (no warning)."""
    for replica in api.pods(RELEASE_NAMESPACE, OPERATOR_SELECTOR):
        url = f"http://{replica.status.pod_ip}:8080/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        values = dict(
            line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
        )
        assert float(values["jwtmesh_operator_memory_limit_bytes"]) == 256 * 1024 * 1024
        estimate = float(values["jwtmesh_operator_restart_memory_estimate_bytes"])
        assert 0 < estimate < 0.9 * 256 * 1024 * 1024
