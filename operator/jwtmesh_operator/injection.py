"""Sidecar injection, pure: a Pod spec in, the containers and volumes to add out.

A Pod labeled `jwtmesh.io/identity: <ServiceIdentity name>` gets Envoy (inbound listener →
ext_authz → the app's port, and optionally an egress listener that attaches tokens), the
jwtmesh sidecar, and three volumes: the trust bundle, the identity's policy, and its
signing keys. Ports come from annotations. A Pod already injected is left alone.

The trust bundle is one projected volume of every object it may be published in
(`bundle_sources`): the manifest, MAX_SHARDS optional shards (so the bundle can grow after
the Pod started: the Pod spec cannot change) and the optional single-object form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jwtmesh.cluster import BUNDLE_KEY, manifest_configmap, shard_configmap
from jwtmesh.envoy_config import (
    MIB,
    AuthzEndpoint,
    Destination,
    EnvoyLimits,
    PodEnvoy,
    render_bootstrap,
)
from jwtmesh.shards import MANIFEST_FILE, MAX_SHARDS, shard_file
from jwtmesh_operator.errors import OperatorError
from jwtmesh_operator.netpol import INBOUND_PORT_NAME, METRICS_PORT_NAME  # what it admits

INJECTED_ANNOTATION = "jwtmesh.io/injected"
APP_PORT = "jwtmesh.io/app-port"
INBOUND_PORT = "jwtmesh.io/inbound-port"
EGRESS_PORT = "jwtmesh.io/egress-port"
EGRESS_DESTINATIONS = "jwtmesh.io/egress-destinations"  # "host:port=audience,host:port=audience"
AUTHZ_MODE = "jwtmesh.io/authz-mode"  # http (default, faster) or grpc
TOKEN_HEADER = "jwtmesh.io/token-header"
MAX_BODY_BYTES = "jwtmesh.io/max-body-bytes"  # body binding: Envoy buffers bodies up to this
BODY_LIMIT = 1 << 20  # the sidecar reads at most 1 MiB of body per check

SIDECAR = "jwtmesh-sidecar"
ENVOY = "jwtmesh-envoy"
KEY_VOLUME = "jwtmesh-identity"  # the private keys: mounted into the sidecar only
MOUNTS = {
    "jwtmesh-bundle": "/etc/jwtmesh/bundle",
    "jwtmesh-policy": "/etc/jwtmesh/policy",
    KEY_VOLUME: "/etc/jwtmesh/identity",
}
AUTHZ_PORT = 15004
TOKEN_PORT = 15003
METRICS_PORT = 15090
SIDECAR_UID = 65532
KEY_FILE_MODE = 0o400
ENVOY_ADMIN_PORT = 15000
# Each injected container's resources unless the chart sets injection.*Resources.
DEFAULT_RESOURCES: Mapping[str, Any] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}
ENVOY_MEMORY_MIB = 256  # Envoy's memory when its resources set no limit
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNITS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


class InjectionError(OperatorError, ValueError):
    """The Pod asks for injection but cannot be injected (message says why)."""


@dataclass(frozen=True)
class InjectionSettings:
    envoy_image: str
    sidecar_image: str
    bundle_configmap: str
    policy_suffix: str = "-jwtmesh-policy"
    pull_policy: str = "IfNotPresent"
    sidecar_resources: Mapping[str, Any] = field(default_factory=lambda: DEFAULT_RESOURCES)
    envoy_resources: Mapping[str, Any] = field(default_factory=lambda: DEFAULT_RESOURCES)


@dataclass(frozen=True)
class IdentityRef:
    name: str
    audience: str
    secret_name: str


@dataclass(frozen=True)
class Injection:
    containers: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    pod_security_context: dict[str, Any] | None = None  # None: leave the Pod's as it is


def _port(annotations: Mapping[str, str], key: str, default: int | None) -> int | None:
    raw = annotations.get(key)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise InjectionError(f"annotation {key} must be a port number, not {raw!r}")
    return int(raw)


def _body_bytes(annotations: Mapping[str, str]) -> int:
    raw = annotations.get(MAX_BODY_BYTES, "0")
    if not raw.isdigit() or int(raw) > BODY_LIMIT:
        raise InjectionError(f"annotation {MAX_BODY_BYTES} must be 0..{BODY_LIMIT}, not {raw!r}")
    return int(raw)


def _default_app_port(pod: Mapping[str, Any]) -> int:
    for container in pod.get("spec", {}).get("containers", []):
        for port in container.get("ports", []) or []:
            return int(port["containerPort"])
    raise InjectionError(f"set the {APP_PORT} annotation: no container declares a port")


def parse_destinations(raw: str | None) -> dict[str, str]:
    """'census.default.svc:8080=census.default,...' → {host:port: audience}."""
    result: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (raw or "").split(","))):
        target, sep, audience = item.partition("=")
        host, colon, port = target.rpartition(":")
        if not sep or not colon or not port.isdigit() or not host or not audience:
            raise InjectionError(f"{EGRESS_DESTINATIONS}: {item!r} is not host:port=audience")
        result[target] = audience
    return result


def _hardened(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
        **(extra or {}),
    }


def inject(
    pod: Mapping[str, Any], identity: IdentityRef, settings: InjectionSettings
) -> Injection | None:
    spec = pod.get("spec", {})
    containers = list(spec.get("containers", []))
    if _injected_before(spec):
        return None  # never inject twice
    envoy_config, destinations = pod_envoy(pod, memory_limit(settings.envoy_resources))
    return Injection(
        containers=[
            *containers,
            _envoy_container(envoy_config, settings),
            _sidecar_container(envoy_config, destinations, identity, settings),
        ],
        volumes=_volumes(spec, identity, settings),
        pod_security_context=_with_fs_group(spec.get("securityContext")),
    )


def _injected_before(spec: Mapping[str, Any]) -> bool:
    return any(c.get("name") in (SIDECAR, ENVOY) for c in spec.get("containers") or [])


def key_mount_refusal(spec: Mapping[str, Any], secret_name: str) -> str | None:
    """Why a Pod may not have its identity injected as written, or None: only the injected
    sidecar mounts the private keys, so none of the Pod's own containers may mount the
    volume injection adds (by its name), nor may the Pod mount the key Secret itself."""
    if _injected_before(spec):
        return None  # a copied spec: injection adds nothing to it, no key included
    for volume in spec.get("volumes") or []:
        projected = (volume.get("projected") or {}).get("sources") or []
        named = [(volume.get("secret") or {}).get("secretName")]
        named += [(source.get("secret") or {}).get("name") for source in projected]
        if secret_name in named:
            return (
                f"volume {str(volume.get('name'))[:63]!r} mounts Secret {secret_name!r}, the "
                "identity's private keys: only the injected jwtmesh-sidecar reads them"
            )
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(kind) or []:
            for mount in container.get("volumeMounts") or []:
                if mount.get("name") == KEY_VOLUME:
                    return (
                        f"container {str(container.get('name'))[:63]!r} mounts {KEY_VOLUME!r}, "
                        "the identity's private keys: only the injected jwtmesh-sidecar does"
                    )
    return None


def memory_limit(resources: Mapping[str, Any]) -> int:
    """The container's memory limit in bytes (a Kubernetes quantity), or the default."""
    raw = str((resources.get("limits") or {}).get("memory", f"{ENVOY_MEMORY_MIB}Mi"))
    match = _QUANTITY.match(raw)
    if match is None:
        raise InjectionError(f"the Envoy memory limit {raw!r} is not a quantity such as 256Mi")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def pod_envoy(
    pod: Mapping[str, Any], memory_bytes: int = ENVOY_MEMORY_MIB * MIB
) -> tuple[PodEnvoy, dict[str, str]]:
    """The Pod's Envoy (ports, mode, header, body binding from its annotations; its heap
    limit 3/4 of the container's memory) and its egress destinations (host:port →
    audience)."""
    annotations: Mapping[str, str] = pod.get("metadata", {}).get("annotations") or {}
    app_port = _port(annotations, APP_PORT, None) or _default_app_port(pod)
    inbound_port = _port(annotations, INBOUND_PORT, 15006)
    assert inbound_port is not None
    mode = annotations.get(AUTHZ_MODE, "http")
    if mode not in ("http", "grpc"):
        raise InjectionError(f"{AUTHZ_MODE} must be http or grpc")
    destinations = parse_destinations(annotations.get(EGRESS_DESTINATIONS))
    config = PodEnvoy(
        inbound_port=inbound_port,
        app_port=app_port,
        admin_port=ENVOY_ADMIN_PORT,
        authz=AuthzEndpoint(mode=mode, port=AUTHZ_PORT),
        token_header=annotations.get(TOKEN_HEADER, "authorization").lower(),
        max_request_bytes=_body_bytes(annotations),
        limits=EnvoyLimits(max_heap_bytes=memory_bytes * 3 // 4),
        egress_port=_port(annotations, EGRESS_PORT, 15001 if destinations else None),
        destinations=tuple(
            Destination(
                host=target, address=target.rpartition(":")[0], port=int(target.rpartition(":")[2])
            )
            for target in destinations
        ),
    )
    return config, destinations


def _sidecar_container(
    envoy: PodEnvoy,
    destinations: dict[str, str],
    identity: IdentityRef,
    settings: InjectionSettings,
) -> dict[str, Any]:
    args = [
        "sidecar",
        "--identity",
        identity.audience,
        f"--{envoy.authz.mode}",
        f"127.0.0.1:{AUTHZ_PORT}",
        "--bundle-dir",
        MOUNTS["jwtmesh-bundle"],
        "--policy",
        f"{MOUNTS['jwtmesh-policy']}/policy.yaml",
        "--identity-keys",
        f"{MOUNTS[KEY_VOLUME]}/signing-keys.json",
        "--token-endpoint",
        f"127.0.0.1:{TOKEN_PORT}",
        "--metrics",
        f"0.0.0.0:{METRICS_PORT}",
        "--token-header",
        envoy.token_header,
        "--max-body-bytes",
        str(envoy.max_request_bytes),
    ]
    for target, audience in destinations.items():
        args += ["--egress-audience", f"{target}={audience}"]
    return {
        "name": SIDECAR,
        "image": settings.sidecar_image,
        "imagePullPolicy": settings.pull_policy,
        "args": args,
        "ports": [{"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT}],
        # /readyz: listeners up, a good bundle, policy and key loaded, nothing stale;
        # /healthz: the process and its file poller run (sidecar/jwtmesh_sidecar/health.py).
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": METRICS_PORT},
            "periodSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": METRICS_PORT},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": json.loads(json.dumps(settings.sidecar_resources)),
        "securityContext": _hardened({"runAsUser": SIDECAR_UID, "runAsGroup": SIDECAR_UID}),
        "volumeMounts": [
            {"name": name, "mountPath": path, "readOnly": True} for name, path in MOUNTS.items()
        ],
    }


def _envoy_container(envoy: PodEnvoy, settings: InjectionSettings) -> dict[str, Any]:
    return {
        "name": ENVOY,
        "image": settings.envoy_image,
        "imagePullPolicy": settings.pull_policy,
        "args": [
            "--config-yaml",
            json.dumps(render_bootstrap(envoy), separators=(",", ":")),
            "--log-level",
            "warning",
        ],
        "ports": [{"name": INBOUND_PORT_NAME, "containerPort": envoy.inbound_port}],
        "readinessProbe": {"tcpSocket": {"port": envoy.inbound_port}, "periodSeconds": 5},
        "resources": json.loads(json.dumps(settings.envoy_resources)),
        "securityContext": _hardened({"runAsUser": 101}),
    }


def _volumes(
    spec: Mapping[str, Any], identity: IdentityRef, settings: InjectionSettings
) -> list[dict[str, Any]]:
    return [
        *(spec.get("volumes") or []),
        {
            "name": "jwtmesh-bundle",
            "projected": {"sources": bundle_sources(settings.bundle_configmap)},
        },
        {
            "name": "jwtmesh-policy",
            "configMap": {"name": f"{identity.name}{settings.policy_suffix}", "optional": True},
        },
        {
            "name": KEY_VOLUME,
            # Private keys: 0400, made group-readable (0440 root:<fsGroup>) by the kubelet
            # for the Pod's fsGroup, and mounted into the sidecar only.
            "secret": {"secretName": identity.secret_name, "defaultMode": KEY_FILE_MODE},
        },
    ]


def bundle_sources(bundle_name: str) -> list[dict[str, Any]]:
    """The projected volume's sources, each key mapped to its own file so no two collide.
    All optional: a missing non-optional source would stop the kubelet from updating the
    whole volume. Shards appear as the bundle grows (up to MAX_SHARDS); the single-object
    form is there while the bundle fits one ConfigMap, and the sidecar reads it only if it
    never read a manifest (an operator rolled back to one without shards, docs/scaling.md).
    Before the first publish the volume is empty and the sidecar waits, unready."""

    def source(name: str, key: str) -> dict[str, Any]:
        return {"configMap": {"name": name, "items": [{"key": key, "path": key}], "optional": True}}

    return [
        source(manifest_configmap(bundle_name), MANIFEST_FILE),
        *(source(shard_configmap(bundle_name, i), shard_file(i)) for i in range(MAX_SHARDS)),
        source(bundle_name, BUNDLE_KEY),
    ]


def _with_fs_group(context: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The sidecar (uid 65532) reads the key file through the Pod's fsGroup: give the Pod
    one if it has none (every container is in the fsGroup, so an existing one works too)."""
    if context and context.get("fsGroup") is not None:
        return None
    return {**(context or {}), "fsGroup": SIDECAR_UID}
