"""`helm uninstall`, then the CRDs removed: nothing jwtmesh made is left.

`helm uninstall` deletes the operator's Deployment together with its ServiceAccount and
RBAC, so the stopping replicas meet 401s. They used to log in again and again (~900
times each) until the kubelet killed them 30 s later; now they give up at once.

Kept on purpose by `helm uninstall` (Helm never deletes CRDs, and Pods with sidecars still
mount these): the ServiceIdentities, their key Secrets and policy ConfigMaps, and the trust
bundles; and the operators' leader-election Lease (no one renews it). Removing the CRDs
removes the identities, and with them (garbage collection, ownerReferences) their Secrets
and policy ConfigMaps, and the trust bundles and the Lease, which the ServiceIdentity CRD
owns. The namespaces and the example's own objects (Deployments,
Services, ServiceAccounts) are the user's and stay.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from jwtmesh_testing.paths import CRD_DIR
from jwtmesh_testing.realcluster.clusterapi import ClusterApi
from jwtmesh_testing.realcluster.daemons import say
from jwtmesh_testing.realcluster.failover import OPERATOR_SELECTOR
from jwtmesh_testing.realcluster.inventory import jwtmesh_objects
from jwtmesh_testing.realcluster.rotation import poll
from jwtmesh_testing.realcluster.workloads import RELEASE, RELEASE_NAMESPACE, Kube

pytestmark = pytest.mark.cluster
LOGIN = "Re-authentication has been initiated"


def follow_logs(
    kube: Kube, api: ClusterApi, workdir: Path
) -> list[tuple[Path, subprocess.Popen[bytes]]]:
    """`kubectl logs -f` of each operator replica into a file (gone with the Pod otherwise)."""
    followers = []
    for pod in api.pods(RELEASE_NAMESPACE, OPERATOR_SELECTOR):
        path = workdir / f"{pod.metadata.name}.log"
        argv = [*kube.kubectl_argv(), "-n", RELEASE_NAMESPACE, "logs", "-f", pod.metadata.name]
        with path.open("wb") as log:
            followers.append((path, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)))
    time.sleep(1)  # attached before the uninstall starts
    return followers


def test_uninstall_and_crd_removal_leave_nothing(
    herald_census: Kube, api: ClusterApi, tmp_path: Path
) -> None:
    followers = follow_logs(herald_census, api, tmp_path)
    started = time.monotonic()
    herald_census.helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait")
    poll(
        "the operator replicas gone",
        lambda: (
            not api.core.list_namespaced_pod(
                RELEASE_NAMESPACE, label_selector=OPERATOR_SELECTOR
            ).items
        ),
        60,
        0.5,
    )
    stopped = time.monotonic() - started
    logins = {}
    for path, follower in followers:
        follower.wait(timeout=30)
        logins[path.stem] = path.read_text(errors="replace").count(LOGIN)
    kept = jwtmesh_objects(api)
    say(f"helm uninstall: replicas gone after {stopped:.1f} s, logins while stopping {logins}")
    say(f"kept by helm uninstall (on purpose): {kept}")
    assert stopped < 20
    assert all(count <= 2 for count in logins.values()), logins
    assert set(kept) == {"Secret", "ConfigMap", "CustomResourceDefinition", "Lease"}, kept

    started = time.monotonic()
    herald_census.kubectl("delete", "-f", str(CRD_DIR), "--wait=true")
    poll("garbage collection", lambda: not jwtmesh_objects(api), 60, 1.0)
    say(
        f"CRDs removed; their identities' Secrets, ConfigMaps and bundles gone after "
        f"{time.monotonic() - started:.0f} s"
    )
