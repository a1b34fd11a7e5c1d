"""The gRPC answer memo: keyed on every field a decision reads (`decide.input_key`), so
Envoy's CheckRequests for one caller's token on one route, which differ in request id,
time and source port, are answered from it; anything a decision reads that differs is
decided on its own, and a new bundle is obeyed at once.

Each test drives the real `check_method` and DecisionService and compares the answer with
one that remembers nothing. The memo's other guards (policy, expiry, clock, bounds, what
is never remembered) are the same code as the HTTP transport's: test_answer_memo.py."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2

from jwtmesh.envoy_config import EGRESS_EXTENSION
from jwtmesh.policy import ALLOW_ALL
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_sidecar.answer_memo import AnswerMemo
from jwtmesh_sidecar.decide import CheckInput, Inbound, TokenSettings, input_key
from jwtmesh_sidecar.grpc_adapter import check_method
from jwtmesh_sidecar.metrics import SidecarMetrics
from jwtmesh_sidecar.service import DecisionLog, DecisionService

NOW = 1_800_000_000.0
ISS = "https://mesh.test/herald"
KEY = generate_signing_key()
SETTINGS = VerifierSettings(audience="census", leeway=30.0)


def bundle(revoked: dict[str, float] | None = None) -> TrustBundle:
    return TrustBundle({ISS: IssuerTrust({KEY.public.kid: KEY.public}, revoked_jtis=revoked or {})})


TOKEN = mint_token(KEY, issuer=ISS, subject="herald", audience="census", now=NOW, lifetime=60)


def check_request(
    request_id: str = "1",
    port: int = 40000,
    path: str = "/users/1",
    headers: dict[str, str] | None = None,
    egress: bool = False,
) -> bytes:
    request = external_auth_pb2.CheckRequest()
    request.attributes.source.address.socket_address.port_value = port
    http = request.attributes.request.http
    http.id = request_id
    http.method, http.path, http.host = "GET", path, "census"
    http.headers.update({"authorization": f"Bearer {TOKEN}", **(headers or {})})
    request.attributes.request.time.seconds = int(NOW) + port
    if egress:
        request.attributes.context_extensions[EGRESS_EXTENSION] = "egress"
    return bytes(request.SerializeToString())


class Sidecar:
    def __init__(self, remember: bool = True) -> None:
        self.verifier = Verifier(bundle(), SETTINGS)
        inbound = Inbound(lambda: self.verifier, lambda: ALLOW_ALL, TokenSettings(), 0)
        service = DecisionService(
            inbound, None, SidecarMetrics(), DecisionLog(io.StringIO()), clock=lambda: NOW
        )
        self.memo = AnswerMemo() if remember else None
        self.check = check_method(service, self.memo)

    def answer(self, request: bytes) -> Any:
        reply = self.check(request)
        assert reply.message is not None
        return external_auth_pb2.CheckResponse.FromString(reply.message)


def test_checks_that_differ_in_request_id_time_and_port_are_answered_from_the_memo() -> None:
    sidecar, forgetful = Sidecar(), Sidecar(remember=False)
    first = sidecar.answer(check_request("1", 40000))
    assert first.status.code == 0
    # Remembered when allowed the second time; answered from the memo from the third.
    for request_id, port in (("2", 40001), ("3", 40002), ("4", 40003)):
        request = check_request(request_id, port)
        assert sidecar.answer(request) == first == forgetful.answer(request)
    assert sidecar.memo is not None
    assert sidecar.memo.hits == 2


@pytest.mark.parametrize(
    "other",
    [
        {"path": "/users/2"},
        {"headers": {"x-jwtmesh-extra": "1"}},
        {"headers": {"authorization": "Bearer nope"}},
        {"egress": True},
    ],
)
def test_a_check_that_differs_in_what_a_decision_reads_is_decided_on_its_own(
    other: dict[str, Any],
) -> None:
    sidecar, forgetful = Sidecar(), Sidecar(remember=False)
    sidecar.answer(check_request("1"))
    sidecar.answer(check_request("2"))  # remembered now
    assert sidecar.memo is not None
    assert len(sidecar.memo) == 1
    request = check_request(**other)
    assert sidecar.answer(request) == forgetful.answer(request)
    assert sidecar.memo is not None
    assert sidecar.memo.hits == 0


def test_a_new_bundle_revoking_the_token_is_obeyed_at_once() -> None:
    sidecar = Sidecar()
    assert sidecar.answer(check_request("1")).status.code == 0
    assert sidecar.answer(check_request("2")).status.code == 0
    assert sidecar.memo is not None
    assert len(sidecar.memo) == 1, "remembered: the new bundle must still be obeyed"
    jti = Verifier(bundle(), SETTINGS).verify(TOKEN, NOW).claims["jti"]
    sidecar.verifier = Verifier(bundle({jti: NOW + 3600}), SETTINGS)
    refused = sidecar.answer(check_request("3"))
    assert refused.status.message == "token_revoked"
    assert refused.denied_response.status.code == 401


def _variant(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, bytes):
        return value + b"x"
    if value is None:
        return b"x"
    assert isinstance(value, dict)
    return {**value, "h": "2"}


def test_the_key_covers_every_field_of_the_check_input() -> None:
    base = CheckInput("GET", "/a", "census", {"h": "1"}, b"", False)
    keys = {input_key(base)}
    for spec in dataclasses.fields(CheckInput):
        changed = dataclasses.replace(base, **{spec.name: _variant(getattr(base, spec.name))})
        keys.add(input_key(changed))
    assert len(keys) == 1 + len(dataclasses.fields(CheckInput))


def test_the_key_is_unambiguous_where_fields_meet() -> None:
    def key(method: str, path: str, headers: dict[str, str]) -> bytes:
        return input_key(CheckInput(method, path, "h", headers))

    assert key("GE", "T/a", {}) != key("GET", "/a", {})
    assert key("GET", "/a", {"ab": "c"}) != key("GET", "/a", {"a": "bc"})
    assert key("GET", "/a", {"a": "1", "b": "2"}) == key("GET", "/a", {"b": "2", "a": "1"})
