"""Data-plane hardening, finding 1: no path around Envoy for an injected Pod, by default.

The operator keeps one NetworkPolicy per ServiceIdentity (jwtmesh_operator.netpol, pure;
reconcile.py writes it): the identity's Pods admit ingress only to the ports injection
names (Envoy's inbound listener, the sidecar's metrics) and the identity's own
`spec.openPorts`. The examples' apps bind to loopback. (A real-cluster test with a CNI
that enforces NetworkPolicies is the lead's.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jwtmesh_operator.injection import (
    ENVOY,
    SIDECAR,
    IdentityRef,
    InjectionSettings,
    inject,
    pod_envoy,
)
from jwtmesh_operator.netpol import (
    DIGEST_ANNOTATION,
    OpenPort,
    OpenPortError,
    parse_open_ports,
    render_network_policy,
)
from jwtmesh_operator.spec import IDENTITY_LABEL, SpecError, parse_spec
from jwtmesh_operator.state import OperatorConfig
from jwtmesh_testing.paths import EXAMPLES

MANAGED = {"app.kubernetes.io/managed-by": "jwtmesh-operator"}


def render(open_ports: tuple[OpenPort, ...] = ()) -> dict[str, Any]:
    return render_network_policy("shop", "census", IDENTITY_LABEL, open_ports, MANAGED)


def test_the_identitys_pods_admit_ingress_to_envoys_port_and_the_metrics_only() -> None:
    policy = render()
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["kind"] == "NetworkPolicy"
    assert policy["metadata"]["name"] == "census-jwtmesh-inbound"
    assert policy["metadata"]["namespace"] == "shop"
    assert policy["metadata"]["labels"] == {**MANAGED, IDENTITY_LABEL: "census"}
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {IDENTITY_LABEL: "census"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "ports": [
                    {"protocol": "TCP", "port": "jwtmesh-inbound"},
                    {"protocol": "TCP", "port": "jwtmesh-metrics"},
                ]
            }
        ],
    }


def test_the_admitted_port_names_are_the_ones_injection_declares() -> None:
    """Named ports follow each Pod's own jwtmesh.io/inbound-port; the app's port is not
    among them, whatever the app declares."""
    pod = {
        "metadata": {"annotations": {"jwtmesh.io/inbound-port": "16000"}},
        "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 8080}]}]},
    }
    settings = InjectionSettings("envoy:1", "jwtmesh:1", "tb")
    injected = inject(pod, IdentityRef("census", "census.shop", "census-jwtmesh-key"), settings)
    assert injected is not None
    declared = {
        port["name"]: (container["name"], port["containerPort"])
        for container in injected.containers
        for port in container.get("ports", [])
        if "name" in port
    }
    admitted = {port["port"] for port in render()["spec"]["ingress"][0]["ports"]}
    assert admitted == set(declared)
    assert declared["jwtmesh-inbound"] == (ENVOY, 16000)
    assert declared["jwtmesh-metrics"][0] == SIDECAR
    assert pod_envoy(pod)[0].app_address == "127.0.0.1", "Envoy reaches the app on loopback"


def test_declared_open_ports_are_admitted_too() -> None:
    ports = parse_open_ports([{"port": 8081}, {"port": "health", "protocol": "TCP"}])
    admitted = render(ports)["spec"]["ingress"][0]["ports"]
    assert admitted[2:] == [
        {"protocol": "TCP", "port": 8081},
        {"protocol": "TCP", "port": "health"},
    ]
    assert (
        render(ports)["metadata"]["annotations"][DIGEST_ANNOTATION]
        != (render()["metadata"]["annotations"][DIGEST_ANNOTATION])
    ), "a change of ports is a change the operator writes"


@pytest.mark.parametrize(
    "value",
    [
        "8081",
        [{"protocol": "TCP"}],
        [{"port": 0}],
        [{"port": 70000}],
        [{"port": True}],
        [{"port": "a-name-far-too-long"}],
        [{"port": 80, "protocol": "ICMP"}],
    ],
)
def test_unusable_open_ports_are_refused(value: Any) -> None:
    with pytest.raises(OpenPortError):
        parse_open_ports(value)
    with pytest.raises(SpecError):
        parse_spec("shop", "census", {"openPorts": value}, "jwtmesh.test")


def test_the_spec_carries_open_ports_and_the_operator_writes_policies_by_default() -> None:
    spec = parse_spec("shop", "census", {"openPorts": [{"port": 9090}]}, "jwtmesh.test")
    assert spec.open_ports == (OpenPort(9090, "TCP"),)
    assert parse_spec("shop", "census", {}, "jwtmesh.test").open_ports == ()
    assert OperatorConfig().network_policies is True


def example_pods() -> list[dict[str, Any]]:
    pods = []
    for path in sorted(Path(EXAMPLES).glob("*/manifests.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                pods.append(doc["spec"]["template"])
    return pods


@pytest.mark.parametrize("template", example_pods(), ids=lambda t: t["metadata"]["labels"]["app"])
def test_the_example_apps_bind_to_loopback_and_declare_no_pod_port(
    template: dict[str, Any],
) -> None:
    for container in template["spec"]["containers"]:
        assert not container.get("ports"), "an app port on the Pod IP would skip Envoy"
        listen = [arg for arg in container.get("args", []) if arg.startswith("-listen=")]
        assert all(arg.startswith("-listen=127.0.0.1:") for arg in listen)
    assert template["metadata"]["annotations"]["jwtmesh.io/app-port"]
