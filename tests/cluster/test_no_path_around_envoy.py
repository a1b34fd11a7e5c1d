"""No path around Envoy, on real Pods: from Herald's Pod, Census's app port on Census's Pod
IP does not answer (the example app binds to loopback), while Envoy's inbound port on the
same IP answers and authenticates. The NetworkPolicy the operator keeps for Census admits
only the named ports injection declares.

This cluster's network (the CNI bridge plugin) does not enforce NetworkPolicies, and the
enforcer we could build here (sigs.k8s.io/kube-network-policies) needs the nftables `queue`
expression, which this kernel lacks (CONFIG_NFT_QUEUE is not set): the policy's effect is
shown where it is enforced by its content, the loopback binding by a refused connection.
"""

from __future__ import annotations

import pytest

from jwtmesh_testing.realcluster.workloads import DEMO_NAMESPACE, Kube

pytestmark = pytest.mark.cluster
APP_PORT = 8080  # the example's jwtmesh.io/app-port: Envoy's upstream, on loopback
INBOUND_PORT = 15006  # Envoy's inbound listener (the Service's targetPort)


def census_pod_ip(kube: Kube) -> str:
    pods = kube.json("-n", DEMO_NAMESPACE, "get", "pods", "-l", "app=census")["items"]
    assert pods, "no Census Pod"
    return str(pods[0]["status"]["podIP"])


def from_herald(kube: Kube, url: str) -> str:
    """`demo-http get` in Herald's app container: "<status>[ <reason>]", "000" when refused."""
    return kube.exec_in("herald", "app", "demo-http", "get", url)


def test_the_app_port_on_the_pod_ip_does_not_answer(herald_census: Kube) -> None:
    ip = census_pod_ip(herald_census)
    assert from_herald(herald_census, f"http://{ip}:{APP_PORT}/users/7") == "000"


def test_envoys_port_on_the_pod_ip_answers_and_authenticates(herald_census: Kube) -> None:
    ip = census_pod_ip(herald_census)
    assert from_herald(herald_census, f"http://{ip}:{INBOUND_PORT}/users/7") == "401 missing_token"


def test_censuss_network_policy_admits_envoy_and_metrics_only(herald_census: Kube) -> None:
    policy = herald_census.json(
        "-n", DEMO_NAMESPACE, "get", "networkpolicy", "census-jwtmesh-inbound"
    )
    assert policy["spec"]["podSelector"]["matchLabels"] == {"jwtmesh.io/identity": "census"}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    ports = [port for rule in policy["spec"]["ingress"] for port in rule.get("ports", [])]
    assert sorted(str(port["port"]) for port in ports) == ["jwtmesh-inbound", "jwtmesh-metrics"]
    pods = herald_census.json("-n", DEMO_NAMESPACE, "get", "pods", "-l", "app=census")["items"]
    named = {
        port["name"]: port["containerPort"]
        for container in pods[0]["spec"]["containers"]
        for port in container.get("ports", [])
        if "name" in port
    }
    assert named.get("jwtmesh-inbound") == INBOUND_PORT
    assert APP_PORT not in named.values()
