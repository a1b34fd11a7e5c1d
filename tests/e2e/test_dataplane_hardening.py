"""The data-plane hardening findings on the request path, through a real Envoy and a real
sidecar, in every ext_authz mode: each test is named for the finding it closes.

5: the policy matches what apps route on (HEAD, `;`, case, trailing slash, prefix segments),
   and a refused HEAD never breaks Envoy's connection to the sidecar;
6: a body-bound token never covers a body cut at the buffer limit;
7: a header name with an underscore never reaches the app;
9: a policy 403 carries `WWW-Authenticate: Bearer ... error="insufficient_scope"`.
"""

from __future__ import annotations

import contextlib
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from jwtmesh.envoy_config import PodEnvoy
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, render_bundle
from jwtmesh_testing.modestack import (
    ModeStack,
    envoy_per_mode,
    raw_exchange,
    read_response,
    request_bytes,
)
from jwtmesh_testing.processes import AUTHZ_MODES

pytestmark = pytest.mark.envoy
AUDIENCE = "census.default"
ISSUER = "https://idp.test/herald"
KEY = generate_signing_key("ES256")
BODY_LIMIT = 1024
POLICY = """
rules:
  - name: users
    path: {prefix: /users}
  - name: admin-area
    path: {prefix: /admin/}
    methods: [GET, POST, DELETE]
    claims: [{claim: roles, contains: admin}]
  - name: internal
    path: {prefix: /users-internal}
    claims: [{claim: roles, contains: admin}]
  - name: users-admin
    path: {prefix: /api/Users}
    claims: [{claim: roles, contains: admin}]
  - name: settings
    path: {exact: /settings/}
    claims: [{claim: roles, contains: admin}]
  - name: everything-else
    path: {prefix: /}
"""


def token(roles: tuple[str, ...] = ("reader",), body: bytes | None = None) -> str:
    return mint_token(
        KEY,
        issuer=ISSUER,
        subject="herald.default",
        audience=AUDIENCE,
        now=time.time(),
        lifetime=300,
        body=body,
        extra_claims={"roles": list(roles)},
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModeStack]:
    workdir: Path = tmp_path_factory.mktemp("hardening")
    bundle = workdir / "bundle.json"
    bundle.write_bytes(render_bundle(TrustBundle({ISSUER: IssuerTrust({KEY.kid: KEY.public})})))
    (workdir / "policy.yaml").write_text(POLICY)
    sidecar = {
        "identity": AUDIENCE,
        "trust": {"bundleFiles": [str(bundle)]},
        "policyFile": str(workdir / "policy.yaml"),
        "verification": {"maxBodyBytes": BODY_LIMIT},
    }
    envoy = PodEnvoy(inbound_port=0, app_port=0, admin_port=0, max_request_bytes=BODY_LIMIT)
    with envoy_per_mode(workdir, sidecar, envoy) as built:
        yield built


@pytest.fixture(params=AUTHZ_MODES)
def port(request: pytest.FixtureRequest, stack: ModeStack) -> int:
    return stack.ports[request.param]


def status_and_reason(port: int, method: str, path: str, roles: tuple[str, ...]) -> tuple[int, str]:
    answer = raw_exchange(
        port, request_bytes(method, path, token(roles)), head_only=method == "HEAD"
    )
    if answer.status == 200 or method == "HEAD":
        return answer.status, "-"
    return answer.status, str(answer.json().get("error"))


# --- 5: policy semantics -------------------------------------------------------------


def test_head_is_covered_by_get_rules_so_head_cannot_reach_a_get_handler(port: int) -> None:
    assert status_and_reason(port, "HEAD", "/admin/users", ("reader",))[0] == 403
    assert status_and_reason(port, "GET", "/admin/users", ("reader",)) == (
        403,
        "claim_requirement_failed",
    )
    assert status_and_reason(port, "HEAD", "/admin/users", ("admin",))[0] == 200


@pytest.mark.parametrize("path", ["/admin;x/users", "/admin/users;jsessionid=1", "/users;/1"])
def test_a_path_parameter_is_refused_as_ambiguous(port: int, path: str) -> None:
    assert status_and_reason(port, "GET", path, ("reader",)) == (403, "ambiguous_path")


@pytest.mark.parametrize("path", ["/Admin/users", "/ADMIN/users", "/Users-Internal/keys"])
def test_a_path_whose_case_changes_the_rule_is_refused_as_ambiguous(port: int, path: str) -> None:
    assert status_and_reason(port, "GET", path, ("reader",)) == (403, "ambiguous_path")


def test_a_lower_case_path_under_an_upper_case_rule_is_refused(port: int) -> None:
    """A case-insensitive app routes /api/users to the handler the /api/Users rule guards."""
    assert status_and_reason(port, "GET", "/api/users/1", ("reader",)) == (403, "ambiguous_path")
    assert status_and_reason(port, "GET", "/api/Users/1", ("admin",)) == (200, "-")


def test_a_rule_with_a_trailing_slash_covers_the_path_either_way(port: int) -> None:
    for path in ("/settings", "/settings/"):
        assert status_and_reason(port, "GET", path, ("reader",)) == (
            403,
            "claim_requirement_failed",
        )
        assert status_and_reason(port, "GET", path, ("admin",)) == (200, "-")


def envoy_stat(stack: ModeStack, mode: str, name: str) -> int:
    url = f"http://127.0.0.1:{stack.admin_ports[mode]}/stats?filter=^{name}$"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return int(text.split(":", 1)[1]) if text.strip() else 0


@pytest.mark.parametrize("mode", AUTHZ_MODES)
def test_a_refused_head_keeps_the_connection_to_the_sidecar(stack: ModeStack, mode: str) -> None:
    """An answer to HEAD carries no body; one that did broke the connection each time."""
    errors = "cluster.jwtmesh_authz.upstream_cx_protocol_error"
    before = envoy_stat(stack, mode, errors)
    for path in ("/admin/users", "/users/1"):
        answer = raw_exchange(stack.ports[mode], request_bytes("HEAD", path), head_only=True)
        assert answer.status == 401
    assert envoy_stat(stack, mode, errors) == before


def test_a_prefix_matches_whole_segments_only(port: int, stack: ModeStack) -> None:
    assert status_and_reason(port, "GET", "/users/1", ("reader",)) == (200, "-")
    assert status_and_reason(port, "GET", "/users-internal/keys", ("reader",)) == (
        403,
        "claim_requirement_failed",
    )
    assert status_and_reason(port, "GET", "/users-internal/keys", ("admin",)) == (200, "-")


# --- 9: the 403 challenge --------------------------------------------------------------


def test_a_policy_denial_carries_an_insufficient_scope_challenge(port: int) -> None:
    answer = raw_exchange(port, request_bytes("GET", "/admin/users", token()))
    assert answer.status == 403
    assert answer.headers["www-authenticate"].startswith(
        'Bearer realm="jwtmesh", error="insufficient_scope"'
    )
    assert answer.json()["error"] == "claim_requirement_failed"


# --- 7: header variants ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["x_jwtmesh_subject", "X_JWTMESH_CLAIMS", "x-jwtmesh_issuer"])
def test_a_header_name_with_an_underscore_never_reaches_the_app(
    port: int, stack: ModeStack, name: str
) -> None:
    seen = len(stack.upstream.requests)
    answer = raw_exchange(port, request_bytes("GET", "/users/1", token(), {name: "admin.default"}))
    assert answer.status == 400
    assert len(stack.upstream.requests) == seen, "the upstream never saw the request"
    assert raw_exchange(port, request_bytes("GET", "/users/1", token())).status == 200


# --- 6: body binding at the buffer limit ---------------------------------------------


def test_a_body_bound_token_passes_with_its_whole_body_under_the_limit(port: int) -> None:
    body = b"a" * (BODY_LIMIT - 1)
    answer = raw_exchange(port, request_bytes("POST", "/upload", token(body=body), body=body))
    assert answer.status == 200
    assert answer.json()["body"] == body.decode()
    refused = raw_exchange(port, request_bytes("POST", "/upload", token(body=b"other"), body=body))
    assert (refused.status, refused.json()["error"]) == (401, "body_mismatch")


def test_a_body_at_the_buffer_limit_cannot_satisfy_bdy(port: int) -> None:
    body = b"b" * BODY_LIMIT
    answer = raw_exchange(port, request_bytes("POST", "/upload", token(body=body), body=body))
    assert (answer.status, answer.json()["error"]) == (401, "body_mismatch")


def test_a_token_bound_to_the_first_limit_bytes_never_covers_the_bytes_after(
    port: int, stack: ModeStack
) -> None:
    """The finding: with partial messages allowed, Envoy asked with exactly the first
    max_request_bytes (partial=false) and then forwarded the rest to the app."""
    covered = b"c" * BODY_LIMIT
    extra = b"EVIL" * 100
    seen = len(stack.upstream.requests)
    head = request_bytes("POST", "/upload", token(body=covered))
    head = head.replace(
        b"connection: close\r\n", f"content-length: {BODY_LIMIT + 400}\r\n".encode()
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + covered)
        time.sleep(0.3)  # Envoy has exactly the limit; the rest comes later
        with contextlib.suppress(OSError):  # Envoy may already have answered and closed
            sock.sendall(extra)
        answer = read_response(sock)
    assert answer.status in (401, 413), answer
    assert len(stack.upstream.requests) == seen, "the upstream never saw the request"
