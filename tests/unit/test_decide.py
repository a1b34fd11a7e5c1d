"""The decision core: token extraction, body binding, header hygiene, policy, egress."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jwtmesh.policy import ALLOW_ALL, Policy, policy_from_dict
from jwtmesh.tokens.errors import MissingToken
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, MeshIdentity, TrustBundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_sidecar.decide import (
    CheckInput,
    Egress,
    Inbound,
    TokenSettings,
    audience_for_host,
    decide_egress,
    decide_inbound,
    extract_token,
)
from jwtmesh_sidecar.metrics import SidecarMetrics
from jwtmesh_sidecar.service import DecisionService

NOW = 1_800_000_000.0
ISS = "https://mesh.test/herald"
KEY = generate_signing_key()
TRUSTED = Verifier(
    TrustBundle({ISS: IssuerTrust({KEY.kid: KEY.public})}), VerifierSettings(audience="census")
)


def token(**kw: Any) -> str:
    return mint_token(
        KEY, issuer=ISS, subject="herald", audience="census", now=NOW, lifetime=60, **kw
    )


def inbound(
    policy: Policy = ALLOW_ALL, verifier: Any = TRUSTED, max_body_bytes: int = 64, **settings: Any
) -> Inbound:
    return Inbound(lambda: verifier, lambda: policy, TokenSettings(**settings), max_body_bytes)


def check(
    headers: dict[str, str], path: str = "/x", method: str = "GET", body: bytes | None = b""
) -> CheckInput:
    return CheckInput(method=method, path=path, host="census", headers=headers, body=body)


@pytest.mark.parametrize(
    ("headers", "settings", "expected"),
    [
        ({"authorization": "Bearer abc"}, {}, "abc"),
        ({"authorization": "bearer   abc  "}, {}, "abc"),
        ({"jwt": "abc"}, {"header": "jwt"}, "abc"),
        ({"jwt": "Bearer abc"}, {"header": "jwt"}, "abc"),
    ],
    ids=["Bearer", "case-insensitive scheme", "custom header, bare token", "custom header, Bearer"],
)
def test_the_token_is_found(
    headers: dict[str, str], settings: dict[str, Any], expected: str
) -> None:
    assert extract_token(headers, TokenSettings(**settings)) == expected


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": ""}, {"authorization": "Basic dXNlcg=="}, {"x-token": "abc"}]
)
def test_no_bearer_token_is_a_missing_token(headers: dict[str, str]) -> None:
    with pytest.raises(MissingToken):
        extract_token(headers, TokenSettings())


def test_an_allowed_request_carries_verified_identity_and_loses_spoofed_headers() -> None:
    headers = {
        "authorization": f"Bearer {token()}",
        "x-jwtmesh-subject": "admin",
        "x-jwtmesh-role": "root",
    }
    decision = decide_inbound(check(headers), inbound(), NOW)
    assert decision.allowed
    assert dict(decision.upstream_headers)["x-jwtmesh-subject"] == "herald"
    assert decision.remove_headers == ("x-jwtmesh-role",), "ours are overwritten; others removed"


def test_method_override_headers_never_reach_the_app() -> None:
    """The policy decided on the request's own method; an app must not route by another."""
    headers = {
        "authorization": f"Bearer {token()}",
        "x-http-method-override": "DELETE",
        "x-http-method": "DELETE",
        "x-method-override": "DELETE",
    }
    decision = decide_inbound(check(headers, method="POST"), inbound(), NOW)
    assert decision.allowed
    assert set(decision.remove_headers) == {
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    }


def test_strip_removes_the_token_before_the_upstream() -> None:
    decision = decide_inbound(
        check({"authorization": f"Bearer {token()}"}), inbound(strip=True), NOW
    )
    assert "authorization" in decision.remove_headers


def test_a_refusal_is_a_401_with_reason_and_challenge() -> None:
    decision = decide_inbound(check({"authorization": "Bearer not.a.token"}), inbound(), NOW)
    assert decision.status == 401
    assert json.loads(decision.body)["error"] == "malformed_token"
    challenge = dict(decision.client_headers)["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert "malformed_token" in challenge


def test_a_policy_denial_is_a_403() -> None:
    policy = policy_from_dict({"rules": [{"paths": ["/only"]}]})
    decision = decide_inbound(
        check({"authorization": f"Bearer {token()}"}, path="/x"), inbound(policy), NOW
    )
    assert (decision.status, decision.reason) == (403, "no_matching_rule")


@pytest.mark.parametrize(("mesh", "allowed"), [(True, True), (False, False)])
def test_a_policy_subject_is_the_mesh_identitys_not_any_issuers(mesh: bool, allowed: bool) -> None:
    """The same sub from a mesh issuer (bound by the bundle) and from an external one."""
    binding = MeshIdentity(subject="herald") if mesh else None
    bundle = TrustBundle({ISS: IssuerTrust({KEY.kid: KEY.public}, mesh=binding)})
    verifier = Verifier(bundle, VerifierSettings(audience="census"))
    policy = policy_from_dict({"rules": [{"paths": ["/x"], "subjects": ["herald"]}]})
    request = check({"authorization": f"Bearer {token()}"})
    decision = decide_inbound(request, inbound(policy, verifier), NOW)
    assert decision.allowed is allowed, decision.reason


@pytest.mark.parametrize(
    ("body", "headers", "limit", "allowed"),
    [
        (b'{"a":1}', {}, 64, True),
        (b'{"a":2}', {}, 64, False),
        (b'{"a":1}', {"x-envoy-auth-partial-body": "true"}, 64, False),
        (None, {}, 64, False),
        (b'{"a":1}', {}, 8, True),
        (b'{"a":1}', {"x-envoy-auth-partial-body": "false"}, 7, False),
        (b'{"a":1}', {}, 0, False),
    ],
    ids=[
        "exact body",
        "different body",
        "truncated body",
        "no body forwarded",
        "one byte under the limit",
        "at the limit (Envoy may have cut it there)",
        "Envoy buffers no body",
    ],
)
def test_a_body_bound_token_needs_the_exact_body(
    body: bytes | None, headers: dict[str, str], limit: int, allowed: bool
) -> None:
    bound = token(body=b'{"a":1}')
    decision = decide_inbound(
        check({"authorization": f"Bearer {bound}", **headers}, method="POST", body=body),
        inbound(max_body_bytes=limit),
        NOW,
    )
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason == "body_mismatch"


def test_a_policy_denial_carries_an_insufficient_scope_challenge() -> None:
    policy = policy_from_dict({"rules": [{"name": "only-y", "paths": ["/y"]}]})
    decision = decide_inbound(
        check({"authorization": f"Bearer {token()}"}, path="/x"), inbound(policy), NOW
    )
    headers = dict(decision.client_headers)
    assert decision.status == 403
    assert headers["www-authenticate"].startswith(
        'Bearer realm="jwtmesh", error="insufficient_scope", error_description="no_matching_rule:'
    )
    assert headers["content-type"] == "application/json"


def refreshing_service(state: Inbound, asked: list[bool]) -> DecisionService:
    return DecisionService(
        state, None, SidecarMetrics(), clock=lambda: NOW, on_unknown_key=lambda: asked.append(True)
    )


@pytest.mark.parametrize(
    ("before", "reason"),
    [(TrustBundle({ISS: IssuerTrust({})}), "unknown_kid"), (TrustBundle({}), "unknown_issuer")],
    ids=["unknown kid (a rotation)", "unknown issuer (a new identity)"],
)
def test_an_unknown_key_is_refused_at_once_and_the_shell_asks_for_a_refresh(
    before: TrustBundle, reason: str
) -> None:
    """The decision waits for nothing; the service tells the trust store to look again."""
    asked: list[bool] = []
    state = inbound(verifier=Verifier(before, VerifierSettings(audience="census")))
    service = refreshing_service(state, asked)
    decision = service.check(check({"authorization": f"Bearer {token()}"}))
    assert (decision.status, decision.reason) == (401, reason)
    assert asked == [True]
    assert service.check(check({"authorization": f"Bearer {token()}"}, path="/y")).reason == reason


def test_a_known_key_never_asks_for_a_refresh() -> None:
    asked: list[bool] = []
    service = refreshing_service(inbound(), asked)
    assert service.check(check({"authorization": f"Bearer {token()}"})).allowed
    assert service.check(check({})).reason == "missing_token"
    assert asked == []


def test_egress_attaches_a_token_for_the_destination_audience() -> None:
    egress = Egress(
        {"census:8080": "census.default"}, lambda audience, now: f"token-for-{audience}"
    )
    decision = decide_egress(CheckInput("GET", "/", "census:8080", {}, egress=True), egress, NOW)
    assert decision.allowed
    assert dict(decision.upstream_headers)["authorization"] == "Bearer token-for-census.default"
    refused = decide_egress(CheckInput("GET", "/", "elsewhere", {}, egress=True), egress, NOW)
    assert (refused.status, refused.reason) == (403, "unknown_destination")
    no_key = decide_egress(
        CheckInput("GET", "/", "census:8080", {}, egress=True),
        Egress(egress.audiences, lambda a, n: None),
        NOW,
    )
    assert (no_key.status, no_key.reason) == (503, "no_signing_key")


def test_audience_lookup_tries_host_with_then_without_port() -> None:
    audiences = {"census": "a", "billing:9000": "b"}
    assert audience_for_host(audiences, "census:8080") == "a"
    assert audience_for_host(audiences, "billing:9000") == "b"
    assert audience_for_host(audiences, "billing:9001") is None
