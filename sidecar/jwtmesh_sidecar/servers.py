"""The sidecar's listeners: gRPC and HTTP ext_authz, the operations endpoint, POST /token.

Each is checked before it starts, so a port in use or a bad address is one line naming
the configuration key (`StartupError`), never a C-level log line or a thread that dies.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry

from jwtmesh.addresses import split_host_port
from jwtmesh_sidecar.answer_memo import AnswerMemo
from jwtmesh_sidecar.errors import StartupError
from jwtmesh_sidecar.grpc_adapter import CHECK_METHOD, HEALTH_METHOD, check_method, health_method
from jwtmesh_sidecar.grpc_h2 import AsyncioServer
from jwtmesh_sidecar.grpc_server import (
    GrpcServer,
    PublicServer,
    UnaryServer,
    choose_server,
    missing_from_core,
)
from jwtmesh_sidecar.health import OpsServer
from jwtmesh_sidecar.http_adapter import start_http_server as start_authz_http_server
from jwtmesh_sidecar.outbound import OutboundMinter
from jwtmesh_sidecar.service import DecisionService
from jwtmesh_sidecar.token_endpoint import TokenServer

log = logging.getLogger("jwtmesh.sidecar")
GRPC_OPTIONS = (
    ("grpc.so_reuseport", 0),
    # channelz bookkeeping costs ~5% per Check and nobody reads it here.
    ("grpc.enable_channelz", 0),
    # Write each answer at once instead of batching writes for throughput: Envoy holds the
    # request until it arrives (~150 µs CPU per Check at 1,000 req/s instead of ~175;
    # docs/performance.md).
    ("grpc.optimization_target", "latency"),
)


def _refused(key: str, address: str, exc: OSError) -> StartupError:
    reason = (exc.strerror or str(exc)).lower()
    return StartupError(f"{key}: cannot listen on {address}: {reason}")


def check_can_listen(key: str, address: str) -> None:
    """Bind and release `address` first, so a port in use is one clear line (grpcio's own
    add_port failure is a C-level log line and a bare 0)."""
    host, port = split_host_port(address)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise _refused(key, address, exc) from None


_SERVER_CLASSES: dict[str, type[AsyncioServer | UnaryServer | PublicServer]] = {
    "asyncio": AsyncioServer,
    "core": UnaryServer,
    "public": PublicServer,
}


def start_grpc(
    service: DecisionService,
    tcp: str | None,
    unix_socket: str | None,
    threads: int,
    kind: str,
    readiness: Callable[[], list[str]] = lambda: [],
    memo: AnswerMemo | None = None,
) -> GrpcServer:
    """`memo` is used by the asyncio server only: grpcio's run handlers on a thread pool."""
    choice = choose_server(kind, grpc.__version__, missing_from_core())
    log.info("%s", choice.log_line, extra={"event": "grpc_server"})
    server: GrpcServer = _SERVER_CLASSES[choice.server](
        {
            CHECK_METHOD: check_method(service, memo if choice.server == "asyncio" else None),
            HEALTH_METHOD: health_method(
                frozenset({"envoy.service.auth.v3.Authorization"}), readiness
            ),
        },
        threads=threads,
        options=GRPC_OPTIONS,
    )
    if tcp:
        host, port = split_host_port(tcp)
        if server.add_port(f"{host}:{port}") != port:
            raise StartupError(f"listen.grpc: cannot listen on {tcp}")
    if unix_socket:
        Path(unix_socket).unlink(missing_ok=True)
        if server.add_port(f"unix:{unix_socket}") == 0:
            raise StartupError(f"listen.unixSocket: cannot listen on {unix_socket}")
    server.start()
    return server


class AuthzHttp:
    """HTTP ext_authz on its own event loop thread; start-up errors come back to `start`."""

    def __init__(self, service: DecisionService, address: str, memo: AnswerMemo) -> None:
        self._service = service
        self._address = address
        self._memo = memo
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, name="jwtmesh-http", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        host, port = split_host_port(self._address)
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                start_authz_http_server(self._service, host, port, self._memo)
            )
        except Exception as exc:  # reported by the starting thread, in start()
            self._error = exc
        self._ready.set()
        if self._error is None:
            self._loop.run_forever()
        self._loop.close()

    def start(self) -> AuthzHttp:
        self._thread.start()
        if not self._ready.wait(10):
            raise StartupError(f"listen.http: {self._address} did not start within 10 s")
        if isinstance(self._error, OSError):
            raise _refused("listen.http", self._address, self._error)
        if self._error is not None:
            raise StartupError(f"listen.http: cannot listen on {self._address}: {self._error}")
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            self._loop.stop()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop)
            self._thread.join(5)


def start_ops(
    address: str,
    registry: CollectorRegistry,
    liveness: Callable[[], list[str]],
    readiness: Callable[[], list[str]],
) -> OpsServer:
    host, port = split_host_port(address)
    try:
        server = OpsServer((host, port), registry, liveness, readiness)
    except OSError as exc:
        raise _refused("listen.metrics", address, exc) from None
    server.start()
    return server


def start_token(address: str, minter: OutboundMinter) -> TokenServer:
    host, port = split_host_port(address)
    try:
        server = TokenServer((host, port), minter)
    except OSError as exc:
        raise _refused("listen.token", address, exc) from None
    server.start()
    return server
