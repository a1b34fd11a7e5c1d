"""Envoy bootstrap for a jwtmesh pod: inbound listener → ext_authz → app, optional egress.

Used by the injection webhook, the demo, the tests and the benchmarks, so every one of
them runs the configuration users get. What a client can make Envoy hold, and for how
long, is bounded by `EnvoyLimits` (docs/threat-model.md, "Resource limits").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

# Headers by which many frameworks (Rails, Laravel, Symfony, Express's method-override)
# let a request name another method than its own. The policy decides on the method Envoy
# sees, so the sidecar has them removed before the app could route by them.
METHOD_OVERRIDE_HEADERS = ("x-http-method-override", "x-http-method", "x-method-override")

EGRESS_EXTENSION = "jwtmesh.io/direction"
_HCM = (
    "type.googleapis.com/envoy.extensions.filters.network."
    "http_connection_manager.v3.HttpConnectionManager"
)
_EXT_AUTHZ = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
_EXT_AUTHZ_PER_ROUTE = (
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_FIXED_HEAP = "envoy.resource_monitors.fixed_heap"
_CONNECTIONS = "envoy.resource_monitors.global_downstream_max_connections"
MIB = 1 << 20


@dataclass(frozen=True)
class Destination:
    """An egress destination: requests with this Host go to address:port."""

    host: str
    address: str
    port: int


@dataclass(frozen=True)
class AuthzEndpoint:
    mode: str = "grpc"  # grpc | http
    address: str = "127.0.0.1"
    port: int | None = 9001
    unix_socket: str | None = None  # gRPC over a unix socket instead of TCP
    timeout: str = "0.5s"


@dataclass(frozen=True)
class EnvoyLimits:
    """What one client can make Envoy hold, and for how long. Defaults follow Envoy's
    edge-proxy best practices, sized for the injected container (256 MiB)."""

    request_headers_timeout: float = 10.0  # from the first header byte to the last
    request_timeout: float = 60.0  # the whole request, body included
    stream_idle_timeout: float = 30.0  # a request with nothing moving
    idle_timeout: float = 60.0  # a connection with no request in flight
    max_connections: int = 1024  # downstream, every listener (the overload manager's)
    max_heap_bytes: int = 192 * MIB  # 3/4 of the container's limit; the rest is not heap
    connection_buffer_bytes: int = 32 * 1024  # per connection, each direction
    max_concurrent_streams: int = 100  # HTTP/2 streams per connection


@dataclass(frozen=True)
class PodEnvoy:
    inbound_port: int
    app_port: int
    admin_port: int
    authz: AuthzEndpoint = field(default_factory=AuthzEndpoint)
    app_address: str = "127.0.0.1"
    listen_address: str = "0.0.0.0"  # noqa: S104 - the inbound listener serves the pod IP
    token_header: str = "authorization"
    egress_port: int | None = None
    destinations: tuple[Destination, ...] = ()
    # Body binding (`bdy`): Envoy buffers request bodies up to this many bytes before it
    # asks the sidecar, and refuses larger ones (413). 0: bodies are not buffered, and the
    # sidecar (maxBodyBytes 0) refuses body-bound tokens.
    max_request_bytes: int = 0
    limits: EnvoyLimits = field(default_factory=EnvoyLimits)


def socket_address(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def static_cluster(name: str, address: dict[str, Any], http2: bool = False) -> dict[str, Any]:
    host = address.get("socket_address", {}).get("address")
    cluster: dict[str, Any] = {
        "name": name,
        # Pod-local addresses are IPs; egress destinations are usually Service DNS names.
        "type": "LOGICAL_DNS" if host and not _is_ip(host) else "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _HTTP_OPTIONS,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def ext_authz_filter(config: PodEnvoy, path_prefix: str) -> dict[str, Any]:
    """The ext_authz filter, failing closed; gRPC or HTTP transport."""
    authz = config.authz
    typed: dict[str, Any] = {
        "@type": _EXT_AUTHZ,
        "transport_api_version": "V3",
        "failure_mode_allow": False,
        "status_on_error": {"code": 503},
    }
    if config.max_request_bytes > 0 and path_prefix == "/inbound":
        # No partial bodies: a body that reaches the limit is refused here (413), so the
        # sidecar sees a whole body or none, and `bdy` never covers a prefix of one.
        # (Egress checks mint a token; they never read the body.)
        typed["with_request_body"] = {
            "max_request_bytes": config.max_request_bytes,
            "allow_partial_message": False,
            "pack_as_bytes": True,
        }
    # Only the headers a decision reads: a smaller CheckRequest is cheaper on both sides.
    typed["allowed_headers"] = {
        "patterns": [
            {"exact": config.token_header},
            {"exact": "authorization"},
            {"prefix": "x-jwtmesh-"},
            {"exact": "x-envoy-auth-partial-body"},
            *({"exact": name} for name in METHOD_OVERRIDE_HEADERS),
        ]
    }
    if authz.mode == "grpc":
        typed["grpc_service"] = {
            "envoy_grpc": {"cluster_name": "jwtmesh_authz"},
            "timeout": authz.timeout,
        }
    else:
        typed["http_service"] = {
            "server_uri": {
                "uri": f"http://{authz.address}:{authz.port}",
                "cluster": "jwtmesh_authz",
                "timeout": authz.timeout,
            },
            "path_prefix": path_prefix,
            "authorization_response": {
                "allowed_upstream_headers": {
                    "patterns": [{"prefix": "x-jwtmesh-"}, {"exact": "authorization"}]
                },
                "allowed_client_headers": {
                    "patterns": [{"exact": "www-authenticate"}, {"exact": "content-type"}]
                },
            },
        }
    return {"name": "envoy.filters.http.ext_authz", "typed_config": typed}


def _seconds(value: float) -> str:
    return f"{value:g}s"


def connection_manager(
    name: str,
    virtual_hosts: list[dict[str, Any]],
    auth_filter: dict[str, Any] | None,
    limits: EnvoyLimits | None = None,
) -> dict[str, Any]:
    """An HTTP connection manager: the auth filter (if any), then the router."""
    limits = limits or EnvoyLimits()
    filters = [auth_filter] if auth_filter is not None else []
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": _HCM,
            "stat_prefix": name,
            # Policies match normalised paths: Envoy resolves ../, merges //, and refuses
            # escaped slashes before ext_authz sees the request.
            "normalize_path": True,
            "merge_slashes": True,
            "path_with_escaped_slashes_action": "REJECT_REQUEST",
            # A slow client cannot hold a stream or a connection open for long.
            "request_headers_timeout": _seconds(limits.request_headers_timeout),
            "request_timeout": _seconds(limits.request_timeout),
            "stream_idle_timeout": _seconds(limits.stream_idle_timeout),
            "common_http_protocol_options": {
                "idle_timeout": _seconds(limits.idle_timeout),
                # `x_jwtmesh_subject` reaches WSGI/CGI apps as HTTP_X_JWTMESH_SUBJECT, the
                # variable of the header the sidecar sets: a name with "_" is refused (400).
                "headers_with_underscores_action": "REJECT_REQUEST",
            },
            "http2_protocol_options": {
                "max_concurrent_streams": limits.max_concurrent_streams,
                "initial_stream_window_size": 65536,
                "initial_connection_window_size": 1048576,
            },
            "route_config": {"name": name, "virtual_hosts": virtual_hosts},
            "http_filters": [
                *filters,
                {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}},
            ],
        },
    }


def listener(
    name: str,
    address: str,
    port: int,
    manager: dict[str, Any],
    limits: EnvoyLimits | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "address": socket_address(address, port),
        "per_connection_buffer_limit_bytes": (limits or EnvoyLimits()).connection_buffer_bytes,
        "filter_chains": [{"filters": [manager]}],
    }


def overload_manager(limits: EnvoyLimits) -> dict[str, Any]:
    """Connections capped for every listener; under heap pressure Envoy returns memory,
    closes idle keep-alives, shortens idle timeouts, then refuses new requests (503)."""

    def at(value: float) -> list[dict[str, Any]]:
        return [{"name": _FIXED_HEAP, "threshold": {"value": value}}]

    scale = "type.googleapis.com/envoy.config.overload.v3.ScaleTimersOverloadActionConfig"
    timers = ("HTTP_DOWNSTREAM_CONNECTION_IDLE", "HTTP_DOWNSTREAM_STREAM_IDLE")
    return {
        "refresh_interval": "0.25s",
        "resource_monitors": [
            {
                "name": _FIXED_HEAP,
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                    "fixed_heap.v3.FixedHeapConfig",
                    "max_heap_size_bytes": limits.max_heap_bytes,
                },
            },
            {
                "name": _CONNECTIONS,
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                    "downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": limits.max_connections,
                },
            },
        ],
        "actions": [
            {"name": "envoy.overload_actions.shrink_heap", "triggers": at(0.90)},
            {"name": "envoy.overload_actions.disable_http_keepalive", "triggers": at(0.90)},
            {
                "name": "envoy.overload_actions.reduce_timeouts",
                "triggers": [
                    {
                        "name": _FIXED_HEAP,
                        "scaled": {"scaling_threshold": 0.80, "saturation_threshold": 0.95},
                    }
                ],
                "typed_config": {
                    "@type": scale,
                    "timer_scale_factors": [
                        {"timer": timer, "min_scale": {"value": 10}} for timer in timers
                    ],
                },
            },
            {"name": "envoy.overload_actions.stop_accepting_requests", "triggers": at(0.95)},
        ],
    }


def authz_cluster(authz: AuthzEndpoint) -> dict[str, Any]:
    """The cluster Envoy reaches the sidecar through: HTTP/2 for gRPC, HTTP/1.1 otherwise."""
    if authz.unix_socket:
        address: dict[str, Any] = {"pipe": {"path": authz.unix_socket}}
    else:
        assert authz.port is not None
        address = socket_address(authz.address, authz.port)
    return static_cluster("jwtmesh_authz", address, http2=authz.mode == "grpc")


def _route_to(cluster: str) -> list[dict[str, Any]]:
    return [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]


def _domains(host: str) -> list[str]:
    """A Host header with or without a port: `census` and `census:*`, or `census:8080`
    and `census` (Envoy refuses a second port wildcard after an explicit port)."""
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        return [host, name]
    return [host, f"{host}:*"]


def _egress_virtual_host(cluster: str, destination: Destination) -> dict[str, Any]:
    return {
        "name": cluster,
        "domains": _domains(destination.host),
        "routes": _route_to(cluster),
        # Marks checks from this listener as egress for the gRPC sidecar; Envoy sets it,
        # so no client can.
        "typed_per_filter_config": {
            "envoy.filters.http.ext_authz": {
                "@type": _EXT_AUTHZ_PER_ROUTE,
                "check_settings": {"context_extensions": {EGRESS_EXTENSION: "egress"}},
            }
        },
    }


def render_bootstrap(config: PodEnvoy) -> dict[str, Any]:
    inbound_hosts = [{"name": "app", "domains": ["*"], "routes": _route_to("app")}]
    limits = config.limits
    inbound_filter = ext_authz_filter(config, "/inbound")
    inbound = connection_manager("inbound", inbound_hosts, inbound_filter, limits)
    listeners = [listener("inbound", config.listen_address, config.inbound_port, inbound, limits)]
    clusters = [
        static_cluster("app", socket_address(config.app_address, config.app_port)),
        authz_cluster(config.authz),
    ]
    if config.egress_port is not None:
        egress_hosts = []
        for index, destination in enumerate(config.destinations):
            cluster = f"egress_{index}"
            address = socket_address(destination.address, destination.port)
            clusters.append(static_cluster(cluster, address))
            egress_hosts.append(_egress_virtual_host(cluster, destination))
        egress_filter = ext_authz_filter(config, "/egress")
        egress = connection_manager("egress", egress_hosts, egress_filter, limits)
        listeners.append(listener("egress", "127.0.0.1", config.egress_port, egress, limits))
    return {
        # The admin port (loopback) stays reachable when the connection cap is reached.
        "admin": {
            "address": socket_address("127.0.0.1", config.admin_port),
            "ignore_global_conn_limit": True,
        },
        "static_resources": {"listeners": listeners, "clusters": clusters},
        "overload_manager": overload_manager(limits),
    }
