"""Envoy's gRPC ext_authz (`envoy.service.auth.v3.Authorization/Check`) on the decision core.

Translation only: CheckRequest → CheckInput, Decision → CheckResponse. Check never
raises; anything unexpected is answered with a denial.
"""

from __future__ import annotations

import logging
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from jwtmesh.envoy_config import EGRESS_EXTENSION
from jwtmesh.sidecar.decide import CheckInput, Decision, deny
from jwtmesh.sidecar.service import DecisionService

log = logging.getLogger("jwtmesh.grpc")

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_RPC_CODE = {401: code_pb2.UNAUTHENTICATED, 403: code_pb2.PERMISSION_DENIED}


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


def to_check_response(decision: Decision) -> Any:
    if decision.allowed:
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK),
            ok_response=external_auth_pb2.OkHttpResponse(
                headers=_header_options(decision.upstream_headers),
                headers_to_remove=list(decision.remove_headers),
            ),
        )
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(
            code=_RPC_CODE.get(decision.status, code_pb2.UNAVAILABLE), message=decision.reason
        ),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=decision.status),
            headers=_header_options(decision.client_headers),
            body=decision.body,
        ),
    )


_FAIL_CLOSED = to_check_response(
    deny(503, "internal_error", "the authorizer failed; the request is refused")
)


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, service: DecisionService) -> None:
        self._service = service

    def Check(self, request: Any, context: Any) -> Any:
        try:
            return to_check_response(self._service.check(to_check_input(request)))
        except Exception:
            log.exception("Check failed; denying")
            return _FAIL_CLOSED
