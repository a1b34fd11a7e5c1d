"""Which gRPC server the sidecar runs: grpcio's core layer only where it was tested."""

from __future__ import annotations

import grpc
import pytest

from jwtmesh_sidecar import grpc_server
from jwtmesh_sidecar.config import ConfigError, config_from_dict
from jwtmesh_sidecar.grpc_server import choose_server, missing_from_core

LISTEN = {
    "identity": "census",
    "listen": {"grpc": "127.0.0.1:9001"},
    "trust": {"bundleFiles": ["b"]},
    "noPolicy": True,
}


@pytest.mark.parametrize("version", ["1.66.0", "1.78.0", "1.85.3", "1.85.0rc1"])
def test_core_within_the_tested_range_with_the_contract(version: str) -> None:
    choice = choose_server("core", version, [])
    assert choice.server == "core"
    assert choice.log_line == f"gRPC server: core (grpcio {version})"


@pytest.mark.parametrize("version", ["1.65.2", "1.86.0", "1.86.0rc1", "2.0.0", "unknown"])
def test_public_outside_the_tested_range(version: str) -> None:
    choice = choose_server("core", version, [])
    assert choice.server == "public"
    assert choice.log_line == (
        f"gRPC server: public grpc.server() fallback because grpcio {version} "
        "is outside the tested range >=1.66,<1.86"
    )


def test_public_when_the_contract_is_missing_even_in_range() -> None:
    choice = choose_server("core", "1.85.3", ["cygrpc.Server.destroy"])
    assert choice.server == "public"
    assert choice.log_line.endswith("because grpcio 1.85.3 lacks cygrpc.Server.destroy")


def test_public_when_asked_for_even_if_core_would_do() -> None:
    choice = choose_server("public", "1.85.3", [])
    assert choice.server == "public"
    assert choice.log_line.endswith("fallback because grpcServer is public")


def test_the_installed_grpcio_is_tested_and_has_the_contract() -> None:
    assert missing_from_core() == []
    assert choose_server("core", grpc.__version__, []).server == "core", grpc.__version__


def test_a_missing_name_or_method_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    class StrippedServer:
        def start(self) -> None: ...

    class Stripped:  # a cygrpc that renamed things
        CompletionQueue = object
        Server = StrippedServer

    monkeypatch.setattr(grpc_server, "cygrpc", Stripped)
    missing = missing_from_core()
    assert "cygrpc.Server.destroy" in missing
    assert "cygrpc.Server.start" not in missing
    assert "cygrpc.CompletionQueue.poll" in missing
    assert "cygrpc.ReceiveMessageOperation" in missing
    monkeypatch.setattr(grpc_server, "cygrpc", None)
    assert missing_from_core() == ["grpc._cython.cygrpc"]


def test_config_key_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWTMESH_GRPC_SERVER", raising=False)
    assert config_from_dict(LISTEN).grpc_server == "asyncio"
    assert config_from_dict({**LISTEN, "grpcServer": "public"}).grpc_server == "public"
    assert config_from_dict({**LISTEN, "grpcServer": "core"}).grpc_server == "core"
    with pytest.raises(
        ConfigError, match=r"grpcServer: expected .asyncio., .core. or .public., got .fast."
    ):
        config_from_dict({**LISTEN, "grpcServer": "fast"})
    monkeypatch.setenv("JWTMESH_GRPC_SERVER", "public")
    assert config_from_dict({**LISTEN, "grpcServer": "core"}).grpc_server == "public"
    monkeypatch.setenv("JWTMESH_GRPC_SERVER", "fast")
    with pytest.raises(ConfigError, match=r"JWTMESH_GRPC_SERVER: expected one of asyncio, core"):
        config_from_dict(LISTEN)


def test_our_asyncio_server_needs_no_grpcio_check() -> None:
    choice = choose_server("asyncio", "1.99.0", ["cygrpc.Server"])
    assert choice.server == "asyncio"
    assert choice.log_line == "gRPC server: asyncio (HTTP/2 on asyncio)"
