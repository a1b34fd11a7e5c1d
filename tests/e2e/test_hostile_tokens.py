"""The hostile-token suite through a real Envoy and sidecar, gRPC and HTTP ext_authz.

Every case: 401 with the documented reason, never a 5xx, never a traceback; and the
sidecar's memory stays flat across repeated runs of the whole suite.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jwtmesh.envoy_config import AuthzEndpoint, PodEnvoy
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import render_bundle
from jwtmesh_testing.hostile import Keys, catalogue
from jwtmesh_testing.processes import (
    AUTHZ_MODES,
    EchoUpstream,
    ManagedProcess,
    authz_mode,
    free_port,
    start_envoy,
    start_sidecar,
)

pytestmark = pytest.mark.envoy
KEYS = Keys.generate()
# Only the case names are taken at collection; the tokens and the bundle are made when the
# module's Envoys start (a token minted at collection could expire before a long run reaches it).
CASES = catalogue(KEYS, time.time(), revoked_jti="stolen-jti", cutoff=time.time() - 200)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    workdir: Path = tmp_path_factory.mktemp("hostile")
    now = time.time()
    bundle = workdir / "bundle.json"
    bundle.write_bytes(render_bundle(KEYS.bundle(now, "stolen-jti", now - 200)))
    cases = catalogue(KEYS, now, revoked_jti="stolen-jti", cutoff=now - 200)
    upstream = EchoUpstream().start()
    grpc_port, http_port = free_port(), free_port()
    own = {mode: free_port() for mode in ("grpc-core", "grpc-public")}
    sidecar = start_sidecar(
        {
            "identity": KEYS.audience,
            "listen": {"grpc": f"127.0.0.1:{grpc_port}", "http": f"127.0.0.1:{http_port}"},
            "trust": {"bundleFiles": [str(bundle)]},
            "noPolicy": True,
        },
        workdir,
    )
    others = [  # the same over the other gRPC servers
        start_sidecar(
            {
                "identity": KEYS.audience,
                "listen": {"grpc": f"127.0.0.1:{port}"},
                "trust": {"bundleFiles": [str(bundle)]},
                "noPolicy": True,
                **authz_mode(mode)[1],
            },
            workdir,
            f"sidecar-{mode}",
        )
        for mode, port in own.items()
    ]
    envoys: list[ManagedProcess] = []
    ports = {}
    for mode, port in (("grpc", grpc_port), ("http", http_port), *own.items()):
        ports[mode] = free_port()
        envoys.append(
            start_envoy(
                PodEnvoy(
                    inbound_port=ports[mode],
                    app_port=upstream.port,
                    admin_port=free_port(),
                    listen_address="127.0.0.1",
                    authz=AuthzEndpoint(authz_mode(mode)[0], port=port),
                ),
                workdir,
                f"envoy-{mode}",
            )
        )
    yield {"sidecar": sidecar, "ports": ports, "cases": cases, "now": now}
    for envoy in envoys:
        envoy.stop()
    sidecar.stop()
    for other in others:
        other.stop()
    upstream.stop()


def raw_request(port: int, head: bytes) -> tuple[int, bytes]:
    """Send exactly these request bytes (no client-side validation) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        status = int(data.split(b" ", 2)[1])
        head_end = data.index(b"\r\n\r\n") + 4
        length = 0
        for line in data[:head_end].split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = data[head_end:]
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body


def get(
    port: int, token: str | None = None, extra: bytes = b"", path: str = "/users/1"
) -> tuple[int, bytes]:
    auth = b"" if token is None else b"authorization: Bearer " + token.encode("latin-1") + b"\r\n"
    return raw_request(
        port,
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nhost: census\r\n"
        + auth
        + extra
        + b"connection: close\r\n\r\n",
    )


@pytest.fixture(params=AUTHZ_MODES)
def port(request: pytest.FixtureRequest, stack: dict[str, object]) -> int:
    ports = stack["ports"]
    assert isinstance(ports, dict)
    return int(ports[request.param])


@pytest.mark.parametrize("case", list(CASES))
def test_each_hostile_token_is_refused_with_its_reason(
    port: int, case: str, stack: dict[str, Any]
) -> None:
    make, reason = stack["cases"][case]
    status, body = get(port, make())
    assert status == 401, (status, body[:200])
    assert json.loads(body)["error"] == reason
    assert b"Traceback" not in body


def test_a_valid_token_passes_as_a_control(port: int) -> None:
    token = mint_token(
        KEYS.a_es256,
        issuer=KEYS.issuer_a,
        subject="herald.a",
        audience=KEYS.audience,
        now=time.time(),
        lifetime=60,
    )
    assert get(port, token)[0] == 200


def test_two_authorization_headers_are_refused(port: int) -> None:
    status, body = get(port, "abc.def.ghi", extra=b"authorization: Bearer xyz.uvw.rst\r\n")
    assert status == 401
    assert json.loads(body)["error"] == "malformed_token"


def test_a_token_in_the_query_string_is_not_a_token(port: int) -> None:
    status, body = get(port, None, path="/users/1?access_token=abc.def.ghi")
    assert status == 401
    assert json.loads(body)["error"] == "missing_token"


def test_non_utf8_bytes_in_the_token_are_refused(port: int) -> None:
    status, _body = get(port, "eyJ\xff\xfe.e30.AA")
    assert 400 <= status < 500


def test_a_one_megabyte_token_never_reaches_a_5xx(port: int) -> None:
    """Envoy refuses headers over 60 KiB itself (431) before asking the sidecar."""
    status, _body = get(port, "a" * (1 << 20))
    assert status in (401, 431)


def rss_kib(process: ManagedProcess) -> int:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_sidecar_memory_stays_flat_across_the_suite(stack: dict[str, object]) -> None:
    sidecar = stack["sidecar"]
    ports = stack["ports"]
    assert isinstance(sidecar, ManagedProcess)
    assert isinstance(ports, dict)
    tokens = [make() for make, _ in CASES.values()]

    def one_round() -> None:
        for port in ports.values():
            for token in tokens:
                assert get(port, token)[0] == 401

    one_round()  # warm-up: caches, code paths, allocator pools
    before = rss_kib(sidecar)
    for _ in range(5):
        one_round()
    grown = rss_kib(sidecar) - before
    assert grown < 8 * 1024, (
        f"sidecar RSS grew by {grown} KiB over 5 rounds of {len(tokens) * 2} hostile requests"
    )
