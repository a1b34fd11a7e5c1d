"""The sidecar's own gRPC servers (grpcio's core layer, and HTTP/2 on asyncio), called by a
real grpcio client over TCP and a unix socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from jwtmesh_sidecar.grpc_adapter import CHECK_METHOD, HEALTH_METHOD, check_method, health_method
from jwtmesh_sidecar.grpc_h2 import AsyncioServer
from jwtmesh_sidecar.grpc_server import GrpcServer, Reply, UnaryServer
from jwtmesh_testing.processes import free_port

ECHO = "/test.Echo/Echo"
BROKEN = "/test.Echo/Broken"


class _ExplodingService:
    """A decision service that fails: Check must still answer, with a denial."""

    def check(self, _request: object) -> object:
        raise RuntimeError("secret internals that must not reach the caller")


def _broken(_request: bytes) -> Reply:
    raise RuntimeError("secret internals that must not reach the caller")


SERVERS = {
    "core-1-thread": (UnaryServer, 1),
    "core-2-threads": (UnaryServer, 2),
    "asyncio": (AsyncioServer, 1),
}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[tuple[GrpcServer, int, Path]]:
    # unix socket paths are limited to ~100 bytes; tmp_path can be longer
    short = Path(f"/tmp/jwtmesh-grpc-{free_port()}.sock")
    server_class, threads = SERVERS[request.param]
    server: GrpcServer = server_class(
        {
            ECHO: lambda request: Reply(request[::-1]),
            BROKEN: _broken,
            CHECK_METHOD: check_method(_ExplodingService()),  # type: ignore[arg-type]
            HEALTH_METHOD: health_method(frozenset({"envoy.service.auth.v3.Authorization"})),
        },
        threads=threads,
    )
    port = server.add_port("127.0.0.1:0")
    assert port > 0
    assert server.add_port(f"unix:{short}") > 0
    server.start()
    yield server, port, short
    server.stop(grace=0.5)
    short.unlink(missing_ok=True)


def _echo(channel: grpc.Channel, payload: bytes) -> bytes:
    call = channel.unary_unary(ECHO)
    return bytes(call(payload, timeout=5))


def test_answers_over_tcp_and_unix_socket(server: tuple[GrpcServer, int, Path]) -> None:
    _, port, sock = server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as tcp:
        assert _echo(tcp, b"abc") == b"cba"
    with grpc.insecure_channel(f"unix:{sock}") as unix:
        assert _echo(unix, b"xyz") == b"zyx"


def test_many_concurrent_calls_each_get_their_own_answer(
    server: tuple[GrpcServer, int, Path],
) -> None:
    _, port, _ = server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, ThreadPoolExecutor(16) as pool:
        payloads = [f"call-{i}".encode() for i in range(400)]
        answers = list(pool.map(lambda p: _echo(channel, p), payloads))
    assert answers == [p[::-1] for p in payloads]


def test_unknown_method_is_unimplemented(server: tuple[GrpcServer, int, Path]) -> None:
    _, port, _ = server
    with (
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        pytest.raises(grpc.RpcError) as error,
    ):
        channel.unary_unary("/test.Echo/Nope")(b"", timeout=5)
    assert error.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_failing_method_is_internal_without_details(server: tuple[GrpcServer, int, Path]) -> None:
    _, port, _ = server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary(BROKEN)(b"x", timeout=5)
        assert error.value.code() is grpc.StatusCode.INTERNAL
        assert "secret" not in (error.value.details() or "")
        assert _echo(channel, b"still serving") == b"gnivres llits"


@pytest.mark.parametrize("request_bytes", [b"\xff\xff\xff", b""])
def test_check_fails_closed_when_anything_goes_wrong(
    server: tuple[GrpcServer, int, Path], request_bytes: bytes
) -> None:
    _, port, _ = server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        raw = channel.unary_unary(CHECK_METHOD)(request_bytes, timeout=5)
    response = external_auth_pb2.CheckResponse.FromString(raw)
    assert response.status.code != 0  # not OK
    assert response.denied_response.status.code == 503
    assert b"internal_error" in response.denied_response.body.encode()
    assert "secret" not in response.denied_response.body


def test_health(server: tuple[GrpcServer, int, Path]) -> None:
    _, port, _ = server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "envoy.service.auth.v3.Authorization"):
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as error:
            stub.Check(health_pb2.HealthCheckRequest(service="other"), timeout=5)
        assert error.value.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("server_class", "threads"), [(UnaryServer, 1), (UnaryServer, 3), (AsyncioServer, 1)]
)
def test_stop_closes_the_port_and_ends_every_thread(
    server_class: type[UnaryServer | AsyncioServer], threads: int
) -> None:
    server = server_class({ECHO: lambda request: Reply(request)}, threads=threads)
    port = server.add_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert _echo(channel, b"a") == b"a"
    server.stop(grace=0.5)
    deadline = time.monotonic() + 5
    while any(t.name.startswith("jwtmesh-grpc") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a server thread outlived stop()"
        time.sleep(0.05)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
