"""Envoy's gRPC ext_authz (`envoy.service.auth.v3.Authorization/Check`) on the decision core.

Translation only: CheckRequest → CheckInput, Decision → CheckResponse. Check never
raises; anything unexpected is answered with a denial.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2
from grpc_health.v1 import health_pb2

from jwtmesh import reasons
from jwtmesh.envoy_config import EGRESS_EXTENSION
from jwtmesh.reasons import reason_for
from jwtmesh_sidecar.answer_memo import AnswerMemo
from jwtmesh_sidecar.decide import CheckInput, Decision, deny, input_key
from jwtmesh_sidecar.grpc_server import Reply, UnaryMethod
from jwtmesh_sidecar.service import DecisionService

log = logging.getLogger("jwtmesh.grpc")

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
CheckRequest = external_auth_pb2.CheckRequest


def to_check_input(request: Any) -> CheckInput:
    http = request.attributes.request.http
    return CheckInput(
        method=http.method,
        path=http.path,
        host=http.host,
        headers=http.headers,  # Envoy sends lower-case names
        body=http.raw_body or http.body.encode("utf-8"),
        egress=request.attributes.context_extensions.get(EGRESS_EXTENSION) == "egress",
    )


def _header_options(headers: tuple[tuple[str, str], ...]) -> list[Any]:
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=name, value=value), append_action=_OVERWRITE
        )
        for name, value in headers
    ]


def _allowed_response(
    upstream_headers: tuple[tuple[str, str], ...], remove_headers: tuple[str, ...]
) -> Any:
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=external_auth_pb2.OkHttpResponse(
            headers=_header_options(upstream_headers), headers_to_remove=list(remove_headers)
        ),
    )


@functools.lru_cache(maxsize=1024)
def _allowed_bytes(
    upstream_headers: tuple[tuple[str, str], ...], remove_headers: tuple[str, ...]
) -> bytes:
    """An allowed answer carries only these two, and a caller's every request with one
    token repeats them: building the protobuf again cost more than a cached decision."""
    return bytes(_allowed_response(upstream_headers, remove_headers).SerializeToString())


def response_bytes(decision: Decision) -> bytes:
    """The CheckResponse for `decision`, serialized."""
    if decision.allowed:
        return _allowed_bytes(decision.upstream_headers, decision.remove_headers)
    return bytes(to_check_response(decision).SerializeToString())


def to_check_response(decision: Decision) -> Any:
    if decision.allowed:
        return _allowed_response(decision.upstream_headers, decision.remove_headers)
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(
            code=int(reason_for(decision.reason).grpc_code), message=decision.reason
        ),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=decision.status),
            headers=_header_options(decision.client_headers),
            body=decision.body,
        ),
    )


_FAIL_CLOSED = to_check_response(
    deny(reasons.INTERNAL_ERROR, "the authorizer failed; the request is refused")
)


_FAIL_CLOSED_BYTES = _FAIL_CLOSED.SerializeToString()
CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"
HEALTH_METHOD = "/grpc.health.v1.Health/Check"


def check_method(service: DecisionService, memo: AnswerMemo | None = None) -> UnaryMethod:
    """Authorization/Check on the wire. It never fails: anything unexpected, a request
    that does not parse included, is answered with a denial (fail closed).

    `memo`: allowed answers remembered by `input_key` (answer_memo.py), for a server that
    calls this from one thread only (the memo has no lock); None: every Check decided."""

    def check(request: bytes) -> Reply:
        try:
            check_input = to_check_input(CheckRequest.FromString(request))
            if memo is None:
                return Reply(response_bytes(service.check(check_input)))
            key = input_key(check_input)
            answer = service.answer_again(memo, key)
            if answer is None:
                answer = service.decide_and_remember(
                    check_input, response_bytes, memo, key, len(request)
                )
            return Reply(answer)
        except Exception:
            log.exception("Check failed; denying")
            return Reply(_FAIL_CLOSED_BYTES)

    return check


def health_method(
    serving: frozenset[str], readiness: Callable[[], list[str]] = lambda: []
) -> UnaryMethod:
    """grpc.health.v1 Check for the server ("") and the services in `serving`: SERVING when
    `readiness` finds no problem (the same answer as `/readyz`), else NOT_SERVING, so a
    gRPC health check of the sidecar never says SERVING while it has no good bundle."""
    known = serving | {""}
    answers = {
        ready: health_pb2.HealthCheckResponse(status=status).SerializeToString()
        for ready, status in (
            (True, health_pb2.HealthCheckResponse.SERVING),
            (False, health_pb2.HealthCheckResponse.NOT_SERVING),
        )
    }

    def health(request: bytes) -> Reply:
        if health_pb2.HealthCheckRequest.FromString(request).service not in known:
            return Reply(code=grpc.StatusCode.NOT_FOUND, details="unknown service")
        return Reply(answers[not readiness()])

    return health
