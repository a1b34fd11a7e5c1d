"""`POST /token` on loopback: the local app asks for a token for an audience.

Request: `{"audience": "census.default", "lifetimeSeconds": 300, "bodySha256": null}`.
Response: `{"token": "...", "kid": "...", "expiresAt": 1700000000}`.
"""

from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from jwtmesh_sidecar.outbound import OutboundMinter

MAX_REQUEST_BYTES = 1 << 20


class TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], minter: OutboundMinter) -> None:
        self.minter = minter
        super().__init__(address, _Handler)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="token-endpoint", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: TokenServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # requests carry tokens in responses; keep them out of logs

    def _reply(self, status: HTTPStatus, document: dict[str, Any]) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.send_header("cache-control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/token":
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not_found"})
            return
        try:
            length = int(self.headers.get("content-length", "0"))
            if not 0 < length <= MAX_REQUEST_BYTES:
                raise ValueError("a JSON body is required")
            request = json.loads(self.rfile.read(length))
            audience = request["audience"]
            if not isinstance(audience, str) or not audience:
                raise ValueError("audience must be a non-empty string")
            lifetime = request.get("lifetimeSeconds")
            if lifetime is not None and (not isinstance(lifetime, int | float) or lifetime <= 0):
                raise ValueError("lifetimeSeconds must be a positive number")
            body = request.get("body")
            body_bytes = body.encode() if isinstance(body, str) else None
        except (ValueError, KeyError, TypeError) as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "bad_request", "message": str(exc)})
            return
        minted = self.server.minter.mint(audience, time.time(), lifetime, body_bytes)
        if minted is None:
            self._reply(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"error": "no_signing_key", "message": "this identity has no active signing key"},
            )
            return
        self._reply(
            HTTPStatus.OK,
            {"token": minted.token, "kid": minted.kid, "expiresAt": minted.expires_at},
        )
