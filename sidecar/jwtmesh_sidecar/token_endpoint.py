"""`POST /token` on loopback: the local app asks for a token for an audience.

Request: `{"audience": "census.default", "lifetimeSeconds": 300, "body": "..."}` (only
`audience` is required). Response: `{"token": "...", "kid": "...", "expiresAt": 1700000000}`.
Every other answer, whatever arrives, is JSON `{"error": code, "message": ...}` with a
status and a code from `jwtmesh.reasons.TOKEN_ENDPOINT` (docs/formats.md, "POST /token").
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from jwtmesh.client import TOKEN_REQUEST_HEADER
from jwtmesh.reasons import TOKEN_ENDPOINT
from jwtmesh_sidecar.outbound import OutboundMinter

log = logging.getLogger("jwtmesh.token")
MAX_REQUEST_BYTES = 1 << 20
MAX_AUDIENCE_CHARS = 1024
FIELDS = frozenset({"audience", "lifetimeSeconds", "body"})
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "via")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,10}")


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an integer too large for a float (JSON allows 1e400 spelled out)
        return False


# What the standard library's own parser refuses, as our codes.
_HTTP_ERRORS = {
    HTTPStatus.BAD_REQUEST: "malformed_http",
    HTTPStatus.REQUEST_URI_TOO_LONG: "uri_too_long",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "headers_too_large",
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: "http_version_not_supported",
    HTTPStatus.NOT_IMPLEMENTED: "method_not_allowed",  # a method it has no do_X for
}


class Refused(ValueError):
    """The request gets this answer (a code of TOKEN_ENDPOINT) instead of a token."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TokenRequest:
    audience: str
    lifetime: float | None
    body: bytes | None


def _refuse_constant(name: str) -> Any:
    raise Refused("malformed_request", f"{name} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise Refused("malformed_request", f"duplicate member {key[:40]!r}")
        result[key] = value
    return result


def parse_token_request(raw: bytes) -> TokenRequest:
    """The request body as a TokenRequest; raises Refused with the reason otherwise."""
    try:
        document = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_object, parse_constant=_refuse_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, Refused):
            raise
        raise Refused("malformed_request", "the body is not JSON") from None
    if not isinstance(document, dict):
        raise Refused("malformed_request", "the body must be a JSON object")
    unknown = sorted(set(document) - FIELDS)
    if unknown:
        raise Refused(
            "unknown_field", f"unknown member(s) {unknown}; known: {sorted(FIELDS)}"[:300]
        )
    audience = document.get("audience")
    if (
        not isinstance(audience, str)
        or not 0 < len(audience) <= MAX_AUDIENCE_CHARS
        or not audience.isprintable()
    ):
        raise Refused("invalid_audience", "audience must be a non-empty printable string")
    lifetime = document.get("lifetimeSeconds")
    if lifetime is not None and (
        isinstance(lifetime, bool)
        or not isinstance(lifetime, int | float)
        or not _finite(lifetime)
        or lifetime < 1
    ):
        raise Refused("invalid_lifetime", "lifetimeSeconds must be a finite number, at least 1")
    body = document.get("body")
    if body is not None and not isinstance(body, str):
        raise Refused("invalid_body", "body must be a string (the exact request body, UTF-8)")
    return TokenRequest(
        audience,
        None if lifetime is None else float(lifetime),
        None if body is None else body.encode("utf-8"),
    )


def check_origin(headers: Message) -> None:
    """The request comes from the app itself: it carries TOKEN_REQUEST_HEADER and no sign
    of a proxy (an app that forwards requests to loopback would otherwise relay them)."""
    proxied = [name for name in PROXY_HEADERS if name in headers]
    if proxied:
        raise Refused("proxied_request", f"a request with {proxied[0]} came through a proxy")
    name, value = TOKEN_REQUEST_HEADER
    if [found.strip() for found in headers.get_all(name) or []] != [value]:
        raise Refused("missing_request_header", f"send the header {name}: {value}")


class TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], minter: OutboundMinter, timeout: float = 10.0
    ) -> None:
        self.minter = minter
        # A client that stops sending loses its connection (408), not a thread forever.
        super().__init__(address, type("_Handler", (_Handler,), {"timeout": timeout}))

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="token-endpoint", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: TokenServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # requests carry tokens in responses; keep them out of logs

    def _reply(
        self, status: int, document: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.send_header("cache-control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if getattr(self, "command", None) != "HEAD":
            self.wfile.write(payload)

    def _refuse(self, code: str, message: str) -> None:
        """A JSON refusal; the connection closes after it (a body may be left unread)."""
        answer = TOKEN_ENDPOINT[code]
        headers = [("connection", "close")]
        if code == "method_not_allowed":
            headers.append(("allow", "POST"))
        self.close_connection = True
        self._reply(answer.http_status, {"error": code, "message": message}, tuple(headers))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals, as JSON with our codes (never HTML)."""
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # so the answer has a status line and headers
        self._refuse(_HTTP_ERRORS.get(HTTPStatus(code), "malformed_http"), message or "")

    def _not_post(self) -> None:
        self._refuse("method_not_allowed", "POST /token only")

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_post

    def do_POST(self) -> None:
        try:
            request = self._read()
        except Refused as refused:
            self._refuse(refused.code, refused.message)
            return
        try:
            minted = self.server.minter.mint(
                request.audience, time.time(), request.lifetime, request.body
            )
        except Exception:
            log.exception("minting failed")
            self._refuse("internal_error", "the sidecar failed to mint a token")
            return
        if minted is None:
            self._refuse("no_signing_key", "this identity has no active signing key")
            return
        self._reply(
            HTTPStatus.OK,
            {"token": minted.token, "kid": minted.kid, "expiresAt": minted.expires_at},
        )

    def _read(self) -> TokenRequest:
        if self.path.split("?", 1)[0] != "/token":
            raise Refused("not_found", "POST /token only")
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            raise Refused("length_required", "send a Content-Length body, not a chunked one")
        raw_length = self.headers.get("content-length")
        if raw_length is None:
            raise Refused("length_required", "a JSON body with a Content-Length is required")
        if not _CONTENT_LENGTH.fullmatch(raw_length.strip()):
            # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
            raise Refused("malformed_http", "Content-Length is not a number")
        length = int(raw_length)
        if length > MAX_REQUEST_BYTES:
            raise Refused("request_too_large", f"the body is over {MAX_REQUEST_BYTES} bytes")
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            message = f"the body did not arrive within {self.timeout} s"
            raise Refused("request_timeout", message) from None
        check_origin(self.headers)
        return parse_token_request(raw)
