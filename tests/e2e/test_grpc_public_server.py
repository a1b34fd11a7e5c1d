"""The fallback gRPC server (grpcio's public grpc.server()) answers like the core one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from jwtmesh_sidecar.grpc_adapter import CHECK_METHOD, HEALTH_METHOD, check_method, health_method
from jwtmesh_sidecar.grpc_server import PublicServer, Reply
from jwtmesh_testing.processes import free_port

ECHO = "/test.Echo/Echo"
BROKEN = "/test.Echo/Broken"


class _ExplodingService:
    def check(self, _request: object) -> object:
        raise RuntimeError("secret internals that must not reach the caller")


def _broken(_request: bytes) -> Reply:
    raise RuntimeError("secret internals that must not reach the caller")


@pytest.fixture
def served() -> Iterator[tuple[int, Path]]:
    sock = Path(f"/tmp/jwtmesh-grpc-public-{free_port()}.sock")
    server = PublicServer(
        {
            ECHO: lambda request: Reply(request[::-1]),
            BROKEN: _broken,
            CHECK_METHOD: check_method(_ExplodingService()),  # type: ignore[arg-type]
            HEALTH_METHOD: health_method(frozenset({"envoy.service.auth.v3.Authorization"})),
        }
    )
    port = server.add_port("127.0.0.1:0")
    assert port > 0
    assert server.add_port(f"unix:{sock}") > 0
    server.start()
    yield port, sock
    server.stop(grace=0.5)
    sock.unlink(missing_ok=True)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "stop() closes the port"


def test_answers_bytes_over_tcp_and_unix_socket(served: tuple[int, Path]) -> None:
    port, sock = served
    for target in (f"127.0.0.1:{port}", f"unix:{sock}"):
        with grpc.insecure_channel(target) as channel:
            assert channel.unary_unary(ECHO)(b"abc", timeout=5) == b"cba"


def test_errors_keep_their_codes_and_hide_internals(served: tuple[int, Path]) -> None:
    port, _ = served
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.RpcError) as unknown:
            channel.unary_unary("/test.Echo/Nope")(b"", timeout=5)
        assert unknown.value.code() is grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.RpcError) as broken:
            channel.unary_unary(BROKEN)(b"x", timeout=5)
        assert broken.value.code() is grpc.StatusCode.INTERNAL
        assert "secret" not in (broken.value.details() or "")


def test_check_fails_closed_and_health_answers(served: tuple[int, Path]) -> None:
    port, _ = served
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        raw = channel.unary_unary(CHECK_METHOD)(b"\xff\xff\xff", timeout=5)
        response = external_auth_pb2.CheckResponse.FromString(raw)
        assert response.denied_response.status.code == 503
        assert "secret" not in response.denied_response.body
        stub = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as error:
            stub.Check(health_pb2.HealthCheckRequest(service="other"), timeout=5)
        assert error.value.code() is grpc.StatusCode.NOT_FOUND


def test_a_taken_port_is_reported_as_0() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = PublicServer({ECHO: lambda request: Reply(request)})
        assert server.add_port(f"127.0.0.1:{taken.getsockname()[1]}") == 0
