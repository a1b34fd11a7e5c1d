"""POST /token (data-plane hardening, finding 8): every input gets a JSON answer with a
status and a code from jwtmesh.reasons.TOKEN_ENDPOINT, through a real server on loopback;
non-finite and sub-second lifetimes are refused with 400; docs/formats.md lists the codes."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jwtmesh.identity import IdentityKeys, ScheduledKey
from jwtmesh.reasons import TOKEN_ENDPOINT
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh_sidecar.outbound import OutboundMinter
from jwtmesh_sidecar.token_endpoint import Refused, TokenServer, parse_token_request

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
IDENTITY = IdentityKeys(
    "https://mesh.test/herald",
    "herald.a",
    600,
    (ScheduledKey(generate_signing_key(), time.time() - 5, None),),
)

PARSE_CASES = [
    # (raw body, expected code)
    (b'{"lifetimeSeconds": NaN, "audience": "a"}', "malformed_request"),
    (b'{"audience": "a", "lifetimeSeconds": Infinity}', "malformed_request"),
    (b'{"audience": "a", "lifetimeSeconds": 1e999}', "invalid_lifetime"),
    (b'{"audience": "a", "lifetimeSeconds": 1e-9}', "invalid_lifetime"),
    (b'{"audience": "a", "lifetimeSeconds": 0.5}', "invalid_lifetime"),
    (b'{"audience": "a", "lifetimeSeconds": 0}', "invalid_lifetime"),
    (b'{"audience": "a", "lifetimeSeconds": -5}', "invalid_lifetime"),
    (b'{"audience": "a", "lifetimeSeconds": true}', "invalid_lifetime"),
    (b'{"audience": "a", "lifetimeSeconds": "300"}', "invalid_lifetime"),
    (b'{"audience": "a", "lifetimeSeconds": 1' + b"0" * 400 + b"}", "invalid_lifetime"),
    (b'{"aud": "a"}', "unknown_field"),
    (b'{"audience": "a", "scope": "x"}', "unknown_field"),
    (b"[1]", "malformed_request"),
    (b'"audience"', "malformed_request"),
    (b"null", "malformed_request"),
    (b"", "malformed_request"),
    (b"{", "malformed_request"),
    (b"\xff\xfe{}", "malformed_request"),
    (b'{"audience": "a", "audience": "b"}', "malformed_request"),
    (b"[" * 100_000 + b"]" * 100_000, "malformed_request"),
    (b"{}", "invalid_audience"),
    (b'{"audience": ""}', "invalid_audience"),
    (b'{"audience": 7}', "invalid_audience"),
    (b'{"audience": ["a"]}', "invalid_audience"),
    (b'{"audience": "a\\r\\nx"}', "invalid_audience"),
    (b'{"audience": "a", "body": 7}', "invalid_body"),
]


@pytest.mark.parametrize(("raw", "code"), PARSE_CASES)
def test_every_bad_request_body_has_its_code(raw: bytes, code: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_token_request(raw)
    assert refused.value.code == code
    assert TOKEN_ENDPOINT[code].http_status == 400


def test_a_good_request_parses() -> None:
    parsed = parse_token_request(b'{"audience": "census", "lifetimeSeconds": 1, "body": "x"}')
    assert (parsed.audience, parsed.lifetime, parsed.body) == ("census", 1.0, b"x")
    assert parse_token_request(b'{"audience": "census"}').lifetime is None


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = TokenServer(("127.0.0.1", 0), OutboundMinter(lambda: IDENTITY, 300), timeout=0.5)
    server.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body) if body else {}


ASKED = "jwtmesh-token-request: 1\r\n"  # jwtmesh.client.TOKEN_REQUEST_HEADER


def post(body: bytes, path: str = "/token", extra: str = ASKED) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode()
        + body
    )


GOOD = b'{"audience": "census"}'


WIRE_CASES = [
    # (what, raw bytes, status, code)
    ("no request header (SSRF)", post(GOOD, extra=""), 403, "missing_request_header"),
    (
        "request header 0",
        post(GOOD, extra="jwtmesh-token-request: 0\r\n"),
        403,
        "missing_request_header",
    ),
    ("request header twice", post(GOOD, extra=ASKED * 2), 403, "missing_request_header"),
    (
        "via a proxy",
        post(GOOD, extra=ASKED + "x-forwarded-for: 10.0.0.9\r\n"),
        403,
        "proxied_request",
    ),
    ("Forwarded", post(GOOD, extra=ASKED + "forwarded: for=10.0.0.9\r\n"), 403, "proxied_request"),
    ("Via", post(GOOD, extra=ASKED + "via: 1.1 squid\r\n"), 403, "proxied_request"),
    ("NaN lifetime", post(b'{"audience": "a", "lifetimeSeconds": NaN}'), 400, "malformed_request"),
    ("1e-9 lifetime", post(b'{"audience": "a", "lifetimeSeconds": 1e-9}'), 400, "invalid_lifetime"),
    ("aud for audience", post(b'{"aud": "census"}'), 400, "unknown_field"),
    ("a list", post(b"[1]"), 400, "malformed_request"),
    ("GET", b"GET /token HTTP/1.1\r\nhost: x\r\n\r\n", 405, "method_not_allowed"),
    ("an unknown method", b"BREW /token HTTP/1.1\r\nhost: x\r\n\r\n", 405, "method_not_allowed"),
    ("another path", post(b'{"audience": "a"}', "/mint"), 404, "not_found"),
    ("no length", b"POST /token HTTP/1.1\r\nhost: x\r\n\r\n", 411, "length_required"),
    (
        "chunked",
        b"POST /token HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        411,
        "length_required",
    ),
    (
        "too large",
        b"POST /token HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\n{}",
        413,
        "request_too_large",
    ),
    ("a bad length", post(b"{}").replace(b"length: 2", b"length: x"), 400, "malformed_http"),
    (
        "a length in other digits",
        post(b"{}").replace(b"length: 2", "length: \u00b2".encode("latin-1")),
        400,
        "malformed_http",
    ),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "malformed_http"),
    ("HTTP/2.0", b"POST /token HTTP/2.0\r\nhost: x\r\n\r\n", 505, "http_version_not_supported"),
    ("a huge line", b"POST /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "uri_too_long"),
    ("many headers", b"POST /token HTTP/1.1\r\n" + b"a: b\r\n" * 120 + b"\r\n", 431, None),
]


@pytest.mark.parametrize(
    ("what", "raw", "status", "code"), WIRE_CASES, ids=[c[0] for c in WIRE_CASES]
)
def test_every_input_gets_a_json_answer_with_a_status_and_a_code(
    port: int, what: str, raw: bytes, status: int, code: str | None
) -> None:
    got, headers, body = exchange(port, raw)
    assert got == status, (what, body)
    assert headers["content-type"] == "application/json"
    assert body["error"] == (code or "headers_too_large")
    assert TOKEN_ENDPOINT[str(body["error"])].http_status == status
    if status == 405:
        assert headers["allow"] == "POST"


def test_a_body_that_never_arrives_gets_a_408(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /token HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\n{")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["error"] == "request_timeout"


def claims_of(token: str) -> dict[str, int]:
    payload = token.split(".")[1]
    value: dict[str, int] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return value


@pytest.mark.parametrize("lifetime", [1, 1.5, 300, 10**9])
def test_a_valid_request_gets_a_token_that_lives_at_least_a_second(
    port: int, lifetime: float
) -> None:
    request = json.dumps({"audience": "census", "lifetimeSeconds": lifetime}).encode()
    status, _, body = exchange(port, post(request))
    assert status == 200
    claims = claims_of(str(body["token"]))
    assert 1 <= claims["exp"] - claims["iat"] <= 600, "at least 1 s, at most the identity's max"


def test_docs_list_every_token_endpoint_code_with_its_status() -> None:
    section = DOC.read_text().split("## POST /token", 1)[1].split("\n## ", 1)[0]
    rows = dict(
        (code, int(status))
        for status, code in re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", section, re.M)
    )
    assert rows == {code: answer.http_status for code, answer in TOKEN_ENDPOINT.items()}
