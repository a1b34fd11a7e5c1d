"""The gRPC ext_authz adapter, pure parts: CheckRequest → CheckInput, Decision → CheckResponse."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from grpc_health.v1 import health_pb2

from jwtmesh import reasons
from jwtmesh.envoy_config import EGRESS_EXTENSION
from jwtmesh_sidecar.decide import Decision, deny
from jwtmesh_sidecar.grpc_adapter import (
    health_method,
    response_bytes,
    to_check_input,
    to_check_response,
)


def check_request(*, egress: bool = False, raw_body: bytes = b"", body: str = "") -> object:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path, http.host = "POST", "/users?x=1", "census:8080"
    http.headers["authorization"] = "Bearer t"
    http.raw_body, http.body = raw_body, body
    if egress:
        request.attributes.context_extensions[EGRESS_EXTENSION] = "egress"
    return request


def test_a_check_request_becomes_a_check_input() -> None:
    result = to_check_input(check_request(raw_body=b"\x00bytes"))
    assert (result.method, result.path, result.host) == ("POST", "/users?x=1", "census:8080")
    assert result.headers["authorization"] == "Bearer t"
    assert (result.body, result.egress) == (b"\x00bytes", False)


def test_the_body_is_taken_as_text_when_envoy_does_not_pack_bytes() -> None:
    assert to_check_input(check_request(body="héllo")).body == "héllo".encode()


def test_only_envoys_own_context_extension_marks_egress() -> None:
    assert to_check_input(check_request(egress=True)).egress


def test_an_allowed_decision_overwrites_upstream_headers_and_lists_removals() -> None:
    decision = Decision(
        allowed=True,
        status=200,
        reason="allowed",
        upstream_headers=(("x-jwtmesh-subject", "herald"),),
        remove_headers=("x-jwtmesh-spoofed",),
    )
    response = to_check_response(decision)
    assert response.status.code == 0
    (header,) = response.ok_response.headers
    assert (header.header.key, header.header.value) == ("x-jwtmesh-subject", "herald")
    assert header.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    assert list(response.ok_response.headers_to_remove) == ["x-jwtmesh-spoofed"]


@pytest.mark.parametrize(
    "reason",
    [reasons.TOKEN_EXPIRED, reasons.SUBJECT_NOT_ALLOWED, reasons.NO_SIGNING_KEY],
)
def test_a_refusal_takes_its_grpc_code_and_http_status_from_the_reason_table(
    reason: reasons.Reason,
) -> None:
    response = to_check_response(deny(reason, "why"))
    assert response.status.code == int(reason.grpc_code)
    assert response.status.message == reason.code
    assert response.denied_response.status.code == reason.http_status
    assert f'"error":"{reason.code}"' in response.denied_response.body
    names = [h.header.key for h in response.denied_response.headers]
    assert "content-type" in names


def test_grpc_health_follows_readiness_and_knows_only_its_services() -> None:
    problems: list[str] = ["trust: no good bundle loaded yet"]
    health = health_method(frozenset({"envoy.service.auth.v3.Authorization"}), lambda: problems)

    def ask(service: str) -> Any:
        reply = health(health_pb2.HealthCheckRequest(service=service).SerializeToString())
        if reply.code != grpc.StatusCode.OK:
            return reply.code
        assert reply.message is not None
        return health_pb2.HealthCheckResponse.FromString(reply.message).status

    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    assert ask("") == not_serving
    assert ask("envoy.service.auth.v3.Authorization") == not_serving
    problems.clear()
    assert ask("") == health_pb2.HealthCheckResponse.SERVING
    assert ask("something.Else") == grpc.StatusCode.NOT_FOUND


def test_the_serialized_answer_is_the_answer_built_each_time() -> None:
    """response_bytes remembers allowed answers by their headers: the bytes must be those
    of the message built afresh, for every decision, and differ when the headers do."""
    decisions = [
        Decision(True, 200, "allowed", upstream_headers=(("x-jwtmesh-subject", "a"),)),
        Decision(True, 200, "allowed", upstream_headers=(("x-jwtmesh-subject", "b"),)),
        Decision(True, 200, "allowed", remove_headers=("authorization",)),
        deny(reasons.TOKEN_EXPIRED, "expired"),
        deny(reasons.MISSING_TOKEN, "no token"),
    ]
    for _ in range(2):  # the second pass answers from what the first remembered
        for decision in decisions:
            expected = to_check_response(decision).SerializeToString()
            assert response_bytes(decision) == expected
    assert len({response_bytes(d) for d in decisions}) == len(decisions)
