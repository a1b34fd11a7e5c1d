"""The NetworkPolicy that keeps an identity's Pods reachable only through Envoy. Pure.

Injection puts Envoy in front of the app, but the app's own port still listens on the Pod
IP unless the app binds to loopback, and anything that reaches podIP:appPort would skip
authentication (and could send its own `x-jwtmesh-subject`). So for every ServiceIdentity
the operator keeps one NetworkPolicy, `<name>-jwtmesh-inbound`, selecting the Pods labeled
with the identity and admitting ingress only to the named ports injection declares:
Envoy's inbound listener (`jwtmesh-inbound`) and the sidecar's metrics (`jwtmesh-metrics`),
plus the ports the identity declares open itself (`spec.openPorts`: health or metrics
ports of the app, which then skip authentication by choice). Named ports follow each Pod's
own `jwtmesh.io/inbound-port`. The trade-offs are in docs/threat-model.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jwtmesh_operator.errors import OperatorError

# The container ports injection names (injection.py): the only ones admitted by default.
INBOUND_PORT_NAME = "jwtmesh-inbound"
METRICS_PORT_NAME = "jwtmesh-metrics"
SUFFIX = "-jwtmesh-inbound"
DIGEST_ANNOTATION = "jwtmesh.io/spec-sha256"  # what the operator last wrote
PROTOCOLS = ("TCP", "UDP", "SCTP")


class OpenPortError(OperatorError, ValueError):
    """`spec.openPorts` is unusable (the CRD's validation should have refused it)."""


@dataclass(frozen=True)
class OpenPort:
    """A port of the identity's Pods reachable without Envoy: a number or a port name."""

    port: int | str
    protocol: str = "TCP"


def parse_open_ports(value: Any) -> tuple[OpenPort, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise OpenPortError("openPorts must be a list of {port, protocol}")
    ports = []
    for index, item in enumerate(value):
        where = f"openPorts[{index}]"
        if not isinstance(item, Mapping) or "port" not in item:
            raise OpenPortError(f"{where} needs a port")
        port, protocol = item["port"], item.get("protocol", "TCP")
        numbered = isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536
        named = isinstance(port, str) and 0 < len(port) <= 15
        if not (numbered or named):
            raise OpenPortError(f"{where}.port must be 1-65535 or a port name")
        if protocol not in PROTOCOLS:
            raise OpenPortError(f"{where}.protocol must be one of {PROTOCOLS}")
        if port in (INBOUND_PORT_NAME, METRICS_PORT_NAME):
            continue  # admitted anyway
        ports.append(OpenPort(port, protocol))
    return tuple(ports)


def policy_name(identity: str) -> str:
    return f"{identity}{SUFFIX}"


def policy_spec(
    identity_label: str, identity: str, open_ports: Sequence[OpenPort]
) -> dict[str, Any]:
    ports = [
        {"protocol": "TCP", "port": INBOUND_PORT_NAME},
        {"protocol": "TCP", "port": METRICS_PORT_NAME},
        *({"protocol": p.protocol, "port": p.port} for p in open_ports),
    ]
    return {
        "podSelector": {"matchLabels": {identity_label: identity}},
        "policyTypes": ["Ingress"],
        # From anywhere, to these ports only: which callers may do what is the policy's
        # business (tokens), not the network's.
        "ingress": [{"ports": ports}],
    }


def digest(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def render_network_policy(
    namespace: str,
    identity: str,
    identity_label: str,
    open_ports: Sequence[OpenPort],
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """The whole object (without owner and resourceVersion, which the shell adds)."""
    spec = policy_spec(identity_label, identity, open_ports)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(identity),
            "namespace": namespace,
            "labels": {**labels, identity_label: identity},
            "annotations": {DIGEST_ANNOTATION: digest(spec)},
        },
        "spec": spec,
    }
