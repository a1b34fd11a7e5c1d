"""The Envoy that injection renders is hardened (data-plane findings 4, 6 and 7): timeouts,
a connection cap, the overload manager sized to the container, underscores refused, and
request bodies buffered only for Pods that ask for body binding."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jwtmesh.envoy_config import MIB
from jwtmesh_operator.injection import (
    ENVOY,
    ENVOY_MEMORY_MIB,
    SIDECAR,
    IdentityRef,
    InjectionError,
    InjectionSettings,
    inject,
)

SETTINGS = InjectionSettings(
    envoy_image="envoy:1", sidecar_image="jwtmesh:1", bundle_configmap="tb"
)
CENSUS = IdentityRef(name="census", audience="census.shop", secret_name="census-jwtmesh-key")


def injected(annotations: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    pod = {
        "metadata": {"annotations": annotations or {}},
        "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 8080}]}]},
    }
    result = inject(pod, CENSUS, SETTINGS)
    assert result is not None
    return {container["name"]: container for container in result.containers}


def bootstrap(containers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    args = containers[ENVOY]["args"]
    config: dict[str, Any] = json.loads(args[args.index("--config-yaml") + 1])
    return config


def manager(config: dict[str, Any], name: str = "inbound") -> dict[str, Any]:
    (found,) = [item for item in config["static_resources"]["listeners"] if item["name"] == name]
    typed: dict[str, Any] = found["filter_chains"][0]["filters"][0]["typed_config"]
    return typed


def ext_authz(config: dict[str, Any]) -> dict[str, Any]:
    typed: dict[str, Any] = manager(config)["http_filters"][0]["typed_config"]
    return typed


def test_envoy_has_request_and_idle_timeouts_and_refuses_underscored_headers() -> None:
    config = bootstrap(injected({"jwtmesh.io/egress-destinations": "billing:80=billing.shop"}))
    for name in ("inbound", "egress"):
        hcm = manager(config, name)
        assert hcm["request_headers_timeout"] == "10s"
        assert hcm["request_timeout"] == "60s"
        assert hcm["stream_idle_timeout"] == "30s"
        options = hcm["common_http_protocol_options"]
        assert options["idle_timeout"] == "60s"
        assert options["headers_with_underscores_action"] == "REJECT_REQUEST"
        assert hcm["http2_protocol_options"]["max_concurrent_streams"] == 100
    for listener in config["static_resources"]["listeners"]:
        assert listener["per_connection_buffer_limit_bytes"] == 32 * 1024


def test_the_overload_manager_caps_connections_and_heap_within_the_container_limit() -> None:
    containers = injected()
    limit = containers[ENVOY]["resources"]["limits"]["memory"]
    assert limit == f"{ENVOY_MEMORY_MIB}Mi"
    overload = bootstrap(containers)["overload_manager"]
    monitors = {m["name"]: m["typed_config"] for m in overload["resource_monitors"]}
    heap = monitors["envoy.resource_monitors.fixed_heap"]["max_heap_size_bytes"]
    assert heap == ENVOY_MEMORY_MIB * MIB * 3 // 4, "the heap limit leaves room for the rest"
    connections = monitors["envoy.resource_monitors.global_downstream_max_connections"]
    assert connections["max_active_downstream_connections"] == 1024
    actions = {action["name"] for action in overload["actions"]}
    assert {
        "envoy.overload_actions.shrink_heap",
        "envoy.overload_actions.stop_accepting_requests",
        "envoy.overload_actions.reduce_timeouts",
    } <= actions
    assert bootstrap(containers)["admin"]["ignore_global_conn_limit"] is True


def test_bodies_are_buffered_only_for_pods_that_ask_for_body_binding() -> None:
    plain = injected()
    assert "with_request_body" not in ext_authz(bootstrap(plain))
    args = plain[SIDECAR]["args"]
    assert args[args.index("--max-body-bytes") + 1] == "0"
    binding = injected(
        {
            "jwtmesh.io/max-body-bytes": "16384",
            "jwtmesh.io/egress-destinations": "billing:80=billing.shop",
        }
    )
    egress = manager(bootstrap(binding), "egress")["http_filters"][0]["typed_config"]
    assert "with_request_body" not in egress, "egress checks never read the body"
    body = ext_authz(bootstrap(binding))["with_request_body"]
    assert body == {
        "max_request_bytes": 16384,
        "allow_partial_message": False,
        "pack_as_bytes": True,
    }
    args = binding[SIDECAR]["args"]
    assert args[args.index("--max-body-bytes") + 1] == "16384", "the sidecar knows the limit"


@pytest.mark.parametrize("value", ["-1", "lots", str((1 << 20) + 1)])
def test_a_body_limit_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(InjectionError, match="max-body-bytes"):
        injected({"jwtmesh.io/max-body-bytes": value})
