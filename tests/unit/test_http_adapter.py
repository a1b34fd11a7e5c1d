"""The HTTP ext_authz adapter, pure parts: request parsing, direction, response rendering."""

from __future__ import annotations

import pytest

from jwtmesh import reasons
from jwtmesh.tokens.trust import TrustBundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_sidecar.decide import Decision, deny
from jwtmesh_sidecar.http_adapter import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    BadRequest,
    parse_request,
    render_response,
    to_check_input,
)
from jwtmesh_testing.http_connection import HttpConnection

REQUEST = (
    b"POST /inbound/users?id=1 HTTP/1.1\r\nHost: census\r\nAuthorization: Bearer t\r\n"
    b"X-Jwtmesh-A: 1\r\nx-jwtmesh-a: 2\r\nContent-Length: 4\r\n\r\nbody"
)


def test_a_complete_request_is_parsed_with_lower_case_headers_and_its_body() -> None:
    raw = parse_request(REQUEST + b"GET /next")
    assert raw is not None
    assert (raw.method, raw.target, raw.body, raw.size) == (
        "POST",
        "/inbound/users?id=1",
        b"body",
        len(REQUEST),
    )
    assert raw.headers["authorization"] == "Bearer t"
    assert raw.headers["x-jwtmesh-a"] == "1,2", "a repeated header is joined, never dropped"


@pytest.mark.parametrize("cut", [10, REQUEST.index(b"\r\n\r\n") + 2, len(REQUEST) - 1])
def test_a_partial_request_waits_for_more_bytes(cut: int) -> None:
    assert parse_request(REQUEST[:cut]) is None


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\ncontent-length: lots\r\n\r\n",
        b"GET / HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\ncontent-length: " + str(MAX_BODY_BYTES + 1).encode() + b"\r\n\r\n",
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nx: " + b"a" * (MAX_HEAD_BYTES + 1),
    ],
    ids=["no request line", "bad length", "negative length", "body too large", "chunked", "huge"],
)
def test_a_request_that_can_never_be_answered_is_a_bad_request(data: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_request(data)


def test_the_path_prefix_tells_the_direction_and_anything_else_is_refused() -> None:
    inbound = to_check_input("GET", "/inbound/a/b", {"host": "census"}, b"")
    egress = to_check_input("GET", "/egress/a", {"host": "billing:80"}, b"")
    assert inbound is not None
    assert (inbound.path, inbound.egress) == ("/a/b", False)
    assert egress is not None
    assert (egress.host, egress.egress) == ("billing:80", True)
    assert to_check_input("GET", "/inboundx/a", {}, b"") is None
    assert to_check_input("GET", "/a", {}, b"") is None


def test_an_allowed_answer_carries_the_upstream_headers_and_the_removals() -> None:
    decision = Decision(
        allowed=True,
        status=200,
        reason="allowed",
        upstream_headers=(("x-jwtmesh-subject", "herald\r\nx-evil: 1"),),
        remove_headers=("x-jwtmesh-other", "authorization"),
    )
    head, _, body = render_response(decision).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "x-jwtmesh-subject: heraldx-evil: 1" in lines, "CR/LF can never split the answer"
    assert "x-envoy-auth-headers-to-remove: x-jwtmesh-other,authorization" in lines
    assert body == b""


@pytest.mark.parametrize(
    "reason", [reasons.MISSING_TOKEN, reasons.NO_MATCHING_RULE, reasons.INTERNAL_ERROR]
)
def test_a_refusal_takes_its_status_from_the_reason_table(reason: reasons.Reason) -> None:
    head, _, body = render_response(deny(reason, "why")).partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {reason.http_status} ".encode())
    assert f'"error":"{reason.code}"'.encode() in body
    assert f"content-length: {len(body)}".encode() in head


def test_a_refused_head_is_answered_with_headers_only() -> None:
    """A response to HEAD has no body: bytes after its head would be read by Envoy as the
    next response (a protocol error and a dropped connection per refused HEAD)."""
    sidecar = HttpConnection(Verifier(TrustBundle({}), VerifierSettings(audience="census")), 0.0)
    check = b" /inbound/x HTTP/1.1\r\nhost: census\r\ncontent-length: 0\r\n\r\n"
    get_answer = sidecar.send(b"GET" + check)
    head_answer = sidecar.send(b"HEAD" + check)
    get_head, _, get_body = get_answer.partition(b"\r\n\r\n")
    assert head_answer.startswith(b"HTTP/1.1 401 ")
    assert head_answer == get_head + b"\r\n\r\n", "the GET answer's head, length included"
    assert get_body
    assert f"content-length: {len(get_body)}".encode() in get_head
    unknown = sidecar.send(b"HEAD /elsewhere HTTP/1.1\r\ncontent-length: 0\r\n\r\n")
    assert unknown.startswith(b"HTTP/1.1 400 ")
    assert unknown.endswith(b"\r\n\r\n")
    assert not sidecar.transport.closed
