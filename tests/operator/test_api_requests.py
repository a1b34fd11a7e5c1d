"""The operator's API requests are named as the API server names them (verb, resource),
so jwtmesh_operator_api_requests_total reads like apiserver_request_total."""

from __future__ import annotations

import http.server
import threading

import pytest
from kubernetes import client

from jwtmesh_operator.api_requests import RequestCounter, request_kind

BASE = "https://127.0.0.1:6443"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/v1/namespaces/a/secrets/k", ("get", "secrets")),
        ("PUT", "/api/v1/namespaces/a/secrets/k", ("update", "secrets")),
        ("POST", "/api/v1/namespaces/a/events", ("create", "events")),
        ("GET", "/api/v1/namespaces/a/configmaps?labelSelector=x", ("list", "configmaps")),
        ("GET", "/api/v1/namespaces?watch=true", ("watch", "namespaces")),
        ("GET", "/api/v1/namespaces/a", ("get", "namespaces")),
        (
            "PATCH",
            "/apis/jwtmesh.io/v1alpha1/namespaces/a/serviceidentities/s/status",
            ("patch", "serviceidentities/status"),
        ),
        (
            "GET",
            "/apis/jwtmesh.io/v1alpha1/namespaces/a/serviceidentities/s",
            ("get", "serviceidentities"),
        ),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/j/leases/jwtmesh-operator",
            ("update", "leases"),
        ),
        ("GET", "/apis/jwtmesh.io/v1alpha1/serviceidentities", ("list", "serviceidentities")),
        ("GET", "/version", ("get", "other")),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_request_is_named_by_verb_and_resource(
    method: str, path: str, expected: tuple[str, str]
) -> None:
    assert request_kind(method, BASE + path) == expected


def test_every_request_of_the_client_is_counted() -> None:
    """Through a real `kubernetes` client, against a loopback server answering `{}`."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{server.server_port}"))
    try:
        counter = RequestCounter()
        counter.install(api)
        core = client.CoreV1Api(api)
        core.read_namespaced_config_map("cm", "a", _preload_content=False)
        core.read_namespaced_config_map("cm", "b", _preload_content=False)
        core.list_namespaced_secret("a", _preload_content=False)
    finally:
        api.close()
        server.shutdown()
        server.server_close()
    assert counter.snapshot() == {("get", "configmaps"): 2, ("list", "secrets"): 1}
