"""The sidecar's operations endpoint (`listen.metrics`): `/metrics`, `/healthz`, `/readyz`.

- `/healthz` (liveness): 200 while the process serves and its poller thread runs.
- `/readyz` (readiness): 200 once every listener is up, a good trust bundle (and policy,
  and signing key, where configured) is loaded, and nothing is stale beyond its bound
  (a JWKS URL not fetched for `trust.maxStaleSeconds`, mounted files not checked for
  `POLLER_STALE_AFTER`); else 503 with the reasons, one per line (JSON with
  `Accept: application/json`). The injected Pods' probes use both.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

POLLER_STALE_AFTER = 10.0  # seconds, or 50 poll intervals if longer


class OpsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        liveness: Callable[[], list[str]],
        readiness: Callable[[], list[str]],
    ) -> None:
        self.registry = registry
        self.liveness = liveness
        self.readiness = readiness
        super().__init__(address, _Handler)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="jwtmesh-ops", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: OpsServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # probes and scrapes every few seconds: not worth a log line each

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.send_header("cache-control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _check(self, problems: list[str], ok: str) -> None:
        status = HTTPStatus.SERVICE_UNAVAILABLE if problems else HTTPStatus.OK
        if "application/json" in self.headers.get("accept", ""):
            document = {"ok": not problems, "problems": problems}
            self._reply(status, json.dumps(document).encode(), "application/json")
        else:
            text = "\n".join(problems) if problems else ok
            self._reply(status, (text + "\n").encode(), "text/plain; charset=utf-8")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(HTTPStatus.OK, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._check(self.server.liveness(), "ok")
        elif path == "/readyz":
            self._check(self.server.readiness(), "ready")
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
