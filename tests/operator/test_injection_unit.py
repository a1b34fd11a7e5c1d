"""Sidecar injection, pure: a Pod in, the containers and volumes to add out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jwtmesh.shards import MAX_SHARDS
from jwtmesh_operator.injection import (
    ENVOY,
    SIDECAR,
    IdentityRef,
    InjectionError,
    InjectionSettings,
    inject,
    key_mount_refusal,
    parse_destinations,
)

SETTINGS = InjectionSettings(
    envoy_image="envoy:1", sidecar_image="jwtmesh:1", bundle_configmap="tb"
)
CENSUS = IdentityRef(name="census", audience="census.shop", secret_name="census-jwtmesh-key")


def pod(
    annotations: dict[str, str] | None = None, ports: list[int] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "app:1"}
    if ports is not None:
        container["ports"] = [{"containerPort": port} for port in ports]
    return {
        "metadata": {"name": "census-0", "annotations": annotations or {}},
        "spec": {"containers": [container], "volumes": [{"name": "data", "emptyDir": {}}]},
    }


def containers_by_name(result: Any) -> dict[str, dict[str, Any]]:
    return {container["name"]: container for container in result.containers}


def envoy_bootstrap(result: Any) -> dict[str, Any]:
    args = containers_by_name(result)[ENVOY]["args"]
    config: dict[str, Any] = json.loads(args[args.index("--config-yaml") + 1])
    return config


def test_a_labeled_pod_gets_envoy_the_sidecar_and_three_read_only_volumes() -> None:
    result = inject(pod(ports=[8080]), CENSUS, SETTINGS)
    assert result is not None
    by_name = containers_by_name(result)
    assert set(by_name) == {"app", ENVOY, SIDECAR}
    sidecar = by_name[SIDECAR]
    assert sidecar["args"][sidecar["args"].index("--identity") + 1] == "census.shop"
    assert all(mount["readOnly"] for mount in sidecar["volumeMounts"])
    volumes = {volume["name"]: volume for volume in result.volumes}
    assert volumes["jwtmesh-identity"]["secret"]["secretName"] == "census-jwtmesh-key"
    assert "projected" in volumes["jwtmesh-bundle"], "the sharded bundle: its own test below"
    assert volumes["jwtmesh-policy"]["configMap"]["name"] == "census-jwtmesh-policy"
    assert "data" in volumes, "the Pod's own volumes stay"
    for name in (ENVOY, SIDECAR):
        security = by_name[name]["securityContext"]
        assert security["runAsNonRoot"]
        assert security["readOnlyRootFilesystem"]


def test_envoy_forwards_the_inbound_port_to_the_apps_first_declared_port() -> None:
    bootstrap = envoy_bootstrap(inject(pod(ports=[8080, 9000]), CENSUS, SETTINGS))
    (listener,) = bootstrap["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 15006
    app = next(c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "app")
    endpoint = app["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"]["port_value"] == 8080


def test_annotations_choose_ports_mode_header_and_egress() -> None:
    annotations = {
        "jwtmesh.io/app-port": "9000",
        "jwtmesh.io/inbound-port": "16000",
        "jwtmesh.io/authz-mode": "grpc",
        "jwtmesh.io/token-header": "X-Token",
        "jwtmesh.io/egress-destinations": "billing.shop.svc:80=billing.shop",
    }
    result = inject(pod(annotations), CENSUS, SETTINGS)
    sidecar_args = containers_by_name(result)[SIDECAR]["args"]
    assert "--grpc" in sidecar_args
    assert sidecar_args[sidecar_args.index("--token-header") + 1] == "x-token"
    assert "billing.shop.svc:80=billing.shop" in sidecar_args
    listeners = envoy_bootstrap(result)["static_resources"]["listeners"]
    ports = {item["name"]: item["address"]["socket_address"]["port_value"] for item in listeners}
    assert ports == {"inbound": 16000, "egress": 15001}


@pytest.mark.parametrize(
    ("annotations", "ports", "message"),
    [
        ({}, None, "no container declares a port"),
        ({"jwtmesh.io/app-port": "eighty"}, [80], "must be a port number"),
        ({"jwtmesh.io/inbound-port": "70000"}, [80], "must be a port number"),
        ({"jwtmesh.io/authz-mode": "smtp"}, [80], "must be http or grpc"),
        ({"jwtmesh.io/egress-destinations": "billing=x"}, [80], "is not host:port=audience"),
    ],
    ids=["no port", "bad app port", "port out of range", "bad mode", "bad destination"],
)
def test_a_pod_that_cannot_be_injected_is_refused_with_the_reason(
    annotations: dict[str, str], ports: list[int] | None, message: str
) -> None:
    with pytest.raises(InjectionError, match=message):
        inject(pod(annotations, ports), CENSUS, SETTINGS)


def test_a_pod_is_never_injected_twice() -> None:
    once = inject(pod(ports=[80]), CENSUS, SETTINGS)
    assert once is not None
    again = {"metadata": {}, "spec": {"containers": once.containers, "volumes": once.volumes}}
    assert inject(again, CENSUS, SETTINGS) is None


def test_destinations_parse_into_host_port_and_audience() -> None:
    assert parse_destinations(" a.svc:80=a.ns , b:8080=b.ns ,") == {
        "a.svc:80": "a.ns",
        "b:8080": "b.ns",
    }
    assert parse_destinations(None) == {}


def test_the_bundle_volume_projects_the_manifest_every_shard_and_the_single_object_form() -> None:
    """One projected volume, so the kubelet swaps it as a whole: the manifest, MAX_SHARDS
    optional shards (the bundle may grow after the Pod started) and the single-object
    form, each key mapped to its own file; the sidecar reads the directory."""
    result = inject(pod(ports=[8080]), CENSUS, SETTINGS)
    assert result is not None
    volume = {v["name"]: v for v in result.volumes}["jwtmesh-bundle"]
    sources = [source["configMap"] for source in volume["projected"]["sources"]]
    expected = [
        ("tb-manifest", "manifest.json"),
        *((f"tb-{i}", f"shard-{i}.json") for i in range(MAX_SHARDS)),
        ("tb", "bundle.json"),
    ]
    assert [(s["name"], s["items"][0]["key"]) for s in sources] == expected
    assert all(
        s["items"] == [{"key": s["items"][0]["key"], "path": s["items"][0]["key"]}] for s in sources
    )
    assert all(s["optional"] for s in sources), "a missing object never blocks the volume"
    args = containers_by_name(result)[SIDECAR]["args"]
    assert args[args.index("--bundle-dir") + 1] == "/etc/jwtmesh/bundle"
    assert "--bundle" not in args


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda s: s["containers"][0].update(
                volumeMounts=[{"name": "jwtmesh-identity", "mountPath": "/k"}]
            ),
            "container 'app'",
        ),
        (
            lambda s: s.update(
                initContainers=[
                    {
                        "name": "init",
                        "volumeMounts": [{"name": "jwtmesh-identity", "mountPath": "/k"}],
                    }
                ]
            ),
            "container 'init'",
        ),
        (
            lambda s: s["volumes"].append(
                {"name": "keys", "secret": {"secretName": "census-jwtmesh-key"}}
            ),
            "volume 'keys'",
        ),
        (
            lambda s: s["volumes"].append(
                {
                    "name": "mixed",
                    "projected": {"sources": [{"secret": {"name": "census-jwtmesh-key"}}]},
                }
            ),
            "volume 'mixed'",
        ),
    ],
    ids=[
        "the app mounts the injected key volume",
        "an init container does",
        "a volume of the key Secret",
        "a projected volume with the key Secret",
    ],
)
def test_only_the_injected_sidecar_may_mount_the_private_keys(change: Any, named: str) -> None:
    spec = pod()["spec"]
    assert key_mount_refusal(spec, CENSUS.secret_name) is None
    change(spec)
    refusal = key_mount_refusal(spec, CENSUS.secret_name)
    assert refusal is not None
    assert refusal.startswith(named), refusal
    assert "private keys" in refusal


def test_a_spec_copied_from_an_injected_pod_is_left_as_it_is() -> None:
    """Injection adds nothing to it (never twice), so it hands no key to anyone."""
    injected = inject(pod(ports=[8080]), CENSUS, SETTINGS)
    assert injected is not None
    copied = {"containers": injected.containers, "volumes": injected.volumes}
    assert key_mount_refusal(copied, CENSUS.secret_name) is None
    assert inject({"spec": copied}, CENSUS, SETTINGS) is None


def test_the_pods_own_volumes_and_the_public_bundle_stay_mountable() -> None:
    spec = pod()["spec"]
    spec["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"},
        {"name": "jwtmesh-bundle", "mountPath": "/bundle"},
    ]
    spec["volumes"].append({"name": "other", "secret": {"secretName": "tls"}})
    assert key_mount_refusal(spec, CENSUS.secret_name) is None
