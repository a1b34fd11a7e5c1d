"""Envoy's HTTP ext_authz (`http_service`) on the decision core.

Envoy forwards the original method, `path_prefix` + the original path, and the allowed
headers (and body). The prefix tells the direction and cannot be forged by a client,
because Envoy always prepends it: `/inbound/...` or `/egress/...`.
A 200 answer allows; its `x-jwtmesh-*` headers reach the upstream (`allowed_upstream_headers`),
and `x-envoy-auth-headers-to-remove` lists headers Envoy strips. Any other status denies.

A deliberately small HTTP/1.1 server on asyncio: keep-alive, Content-Length bodies only.
A request whose bytes were allowed before is answered from the answer memo while that
answer still holds (answer_memo.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from http import HTTPStatus

from jwtmesh import reasons
from jwtmesh_sidecar.answer_memo import AnswerMemo
from jwtmesh_sidecar.decide import CheckInput, Decision, deny
from jwtmesh_sidecar.service import DecisionService

log = logging.getLogger("jwtmesh.http")

INBOUND_PREFIX = "/inbound"
EGRESS_PREFIX = "/egress"
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1 << 20


def to_check_input(
    method: str, target: str, headers: dict[str, str], body: bytes
) -> CheckInput | None:
    """None when the path carries neither direction prefix (a misconfigured Envoy)."""
    for prefix, egress in ((INBOUND_PREFIX, False), (EGRESS_PREFIX, True)):
        if target.startswith(prefix + "/"):
            return CheckInput(
                method=method,
                path=target[len(prefix) :],
                host=headers.get("host", ""),
                headers=headers,
                body=body,
                egress=egress,
            )
    return None


def _clean(value: str) -> str:
    # Header values come from verified claims; never let one split the response.
    return value.replace("\r", "").replace("\n", "")


def render_response(decision: Decision, head: bool = False) -> bytes:
    """`head`: the answer to a HEAD request, which has no body (RFC 9110 9.3.2): its
    content-length is the GET answer's, and body bytes after it would be read by Envoy as
    the next response (a protocol error and a dropped connection per refused HEAD)."""
    status = decision.status
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    if decision.allowed:
        lines += [f"{name}: {_clean(value)}" for name, value in decision.upstream_headers]
        if decision.remove_headers:
            lines.append("x-envoy-auth-headers-to-remove: " + ",".join(decision.remove_headers))
        body = b""
    else:
        lines += [f"{name}: {_clean(value)}" for name, value in decision.client_headers]
        body = decision.body.encode("utf-8")
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + (b"" if head else body)


def render_head_response(decision: Decision) -> bytes:
    return render_response(decision, head=True)


BAD_REQUEST_ANSWER = render_response(
    deny(reasons.BAD_AUTHZ_REQUEST, "unparseable authorization request")
)


class BadRequest(ValueError):
    """The bytes can never become an acceptable HTTP/1.1 request."""


@dataclass(frozen=True, slots=True)
class RawRequest:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ","
    body: bytes
    size: int  # bytes of the buffer this request took


def parse_request(buffer: bytes | bytearray) -> RawRequest | None:
    """The first complete request in `buffer`; None while more bytes are needed.

    Deliberately small: Content-Length bodies only (Envoy sends no chunked bodies to an
    authorizer), at most MAX_HEAD_BYTES of head and MAX_BODY_BYTES of body."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise BadRequest("request head too large")
        return None
    try:
        head = buffer[:end].decode("latin-1").split("\r\n")
        method, target, _version = head[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise BadRequest("unparseable request head") from exc
    if "transfer-encoding" in headers or not 0 <= length <= MAX_BODY_BYTES:
        raise BadRequest("unsupported body framing or size")
    total = end + 4 + length
    if len(buffer) < total:
        return None
    return RawRequest(method, target, headers, bytes(buffer[end + 4 : total]), total)


class AuthzHttpProtocol(asyncio.Protocol):
    def __init__(self, service: DecisionService, memo: AnswerMemo | None = None) -> None:
        self._service = service
        self._memo = AnswerMemo(0) if memo is None else memo
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if not self._buffer and self._transport is not None:
            # One whole request, exactly as one allowed before: no parsing, no deciding.
            answer = self._service.answer_again(self._memo, data)
            if answer is not None:
                self._transport.write(answer)
                return
        self._buffer += data
        while self._transport is not None and not self._transport.is_closing():
            if not self._handle_one():
                break

    def _handle_one(self) -> bool:
        """Answer one complete request from the buffer; False when more bytes are needed."""
        assert self._transport is not None
        try:
            raw = parse_request(self._buffer)
        except BadRequest:
            self._transport.write(BAD_REQUEST_ANSWER)
            self._transport.close()
            return False
        if raw is None:
            return False
        wire = bytes(self._buffer[: raw.size])
        del self._buffer[: raw.size]
        closing = raw.headers.get("connection", "").lower() == "close"
        render = render_head_response if raw.method == "HEAD" else render_response
        request = to_check_input(raw.method, raw.target, raw.headers, raw.body)
        if request is None:
            answer = render(deny(reasons.BAD_AUTHZ_REQUEST, "unknown authorization path prefix"))
        elif closing:  # never answered from the memo: its fast path leaves connections open
            answer = render(self._service.check(request))
        else:
            # The memo's key is the request's bytes, method first: a HEAD's answer (no body)
            # is never given to a GET, nor a GET's to a HEAD.
            answer = self._service.decide_and_remember(request, render, self._memo, wire, len(wire))
        self._transport.write(answer)
        if closing:
            self._transport.close()
        return True


async def start_http_server(
    service: DecisionService, host: str, port: int, memo: AnswerMemo | None = None
) -> asyncio.Server:
    """`memo`: shared by every connection of this loop (None: nothing is remembered)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: AuthzHttpProtocol(service, memo), host, port, reuse_address=True
    )
