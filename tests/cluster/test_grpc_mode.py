"""The gRPC ext_authz mode in a real Pod: Census restarted with `jwtmesh.io/authz-mode: grpc`,
so its Envoy asks the sidecar's own HTTP/2 server (grpc_h2.py, the default gRPC server)
over the Pod's loopback, and Herald's calls through the pod network are decided there.
Census goes back to the HTTP mode at the end, for the modules after this one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jwtmesh_testing.realcluster.clusterapi import ClusterApi, sign
from jwtmesh_testing.realcluster.workloads import DEMO_NAMESPACE, Kube

pytestmark = pytest.mark.cluster
CENSUS = "census.demo.svc:8080"
EGRESS = "http://127.0.0.1:15001"
MODE = "jwtmesh.io/authz-mode"


def _census_mode(kube: Kube, mode: str | None) -> None:
    """Census's Pod template annotated with `mode` (None: the annotation removed), rolled out."""
    value = "null" if mode is None else f'"{mode}"'
    patch = f'{{"spec":{{"template":{{"metadata":{{"annotations":{{"{MODE}":{value}}}}}}}}}}}'
    kube.kubectl("-n", DEMO_NAMESPACE, "patch", "deploy/census", "--type=merge", "-p", patch)
    kube.kubectl(
        "-n", DEMO_NAMESPACE, "rollout", "status", "deploy/census", "--timeout=180s", timeout=200
    )

    def only_new_pods() -> bool:
        # rollout status returns while the old Pod terminates, and the Service may still send
        # a request to it (its Envoy already refusing connections): wait until it is gone.
        pods = kube.json("-n", DEMO_NAMESPACE, "get", "pods", "-l", "app=census")["items"]
        return all(
            not pod["metadata"].get("deletionTimestamp")
            and pod["metadata"].get("annotations", {}).get(MODE) == mode
            for pod in pods
        )

    kube.wait_for("only Census Pods of the new template", only_new_pods, timeout=120)
    kube.wait_for_service(DEMO_NAMESPACE, "census")


@pytest.fixture(scope="module")
def census_on_grpc(herald_census: Kube) -> Iterator[Kube]:
    _census_mode(herald_census, "grpc")
    yield herald_census
    _census_mode(herald_census, None)


def from_herald(kube: Kube, *argv: str) -> str:
    return kube.exec_in("herald", "app", "demo-http", "get", *argv)


def test_census_runs_the_grpc_mode_on_the_asyncio_server(census_on_grpc: Kube) -> None:
    pods = census_on_grpc.json("-n", DEMO_NAMESPACE, "get", "pods", "-l", "app=census")["items"]
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert [p["metadata"]["annotations"].get(MODE) for p in running] == ["grpc"]
    name = running[0]["metadata"]["name"]
    log = census_on_grpc.kubectl("-n", DEMO_NAMESPACE, "logs", name, "-c", "jwtmesh-sidecar")
    assert "gRPC server: asyncio (HTTP/2 on asyncio)" in log


def test_herald_reaches_census_in_the_grpc_mode(census_on_grpc: Kube) -> None:
    assert from_herald(census_on_grpc, "-H", f"host: {CENSUS}", f"{EGRESS}/users/7") == "200"


def test_refusals_keep_their_reasons_in_the_grpc_mode(
    census_on_grpc: Kube, api: ClusterApi
) -> None:
    assert from_herald(census_on_grpc, f"http://{CENSUS}/users/7") == "401 missing_token"
    token = sign(api.identity_keys(DEMO_NAMESPACE, "herald"), "billing.demo")
    bearer = f"authorization: Bearer {token}"
    answer = from_herald(census_on_grpc, "-H", bearer, f"http://{CENSUS}/users/7")
    assert answer == "401 wrong_audience"
