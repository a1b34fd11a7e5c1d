"""One Envoy per ext_authz mode (processes.AUTHZ_MODES) in front of one echo upstream, each
asking a real sidecar process: the stack the data-plane hardening tests attack.

The gRPC (default server) and HTTP modes share one sidecar, grpcio's servers have their own,
as in tests/e2e/test_envoy_dataplane.py. `raw_exchange` sends exact bytes, so a test can
send what no HTTP client library would (a header with an underscore, a body cut short).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jwtmesh.envoy_config import AuthzEndpoint, PodEnvoy
from jwtmesh_testing.processes import (
    AUTHZ_MODES,
    EchoUpstream,
    ManagedProcess,
    authz_mode,
    free_port,
    start_envoy,
    start_sidecar,
)

_SIDECARS = (
    ("sidecar", ("grpc", "http")),
    ("sidecar-core", ("grpc-core",)),
    ("sidecar-public", ("grpc-public",)),
)


@dataclass
class ModeStack:
    upstream: EchoUpstream
    ports: dict[str, int] = field(default_factory=dict)  # Envoy's inbound port, by mode
    admin_ports: dict[str, int] = field(default_factory=dict)
    envoys: dict[str, ManagedProcess] = field(default_factory=dict)
    sidecars: dict[str, ManagedProcess] = field(default_factory=dict)  # by mode (shared)
    metrics_ports: dict[str, int] = field(default_factory=dict)  # the sidecar's, by mode


def _start_sidecars(
    stack: ModeStack, sidecar: dict[str, Any], workdir: Path, modes: tuple[str, ...]
) -> dict[str, int]:
    """Start the sidecars the modes need; returns each mode's authz port."""
    authz: dict[str, int] = {}
    for name, served in _SIDECARS:
        wanted = [mode for mode in served if mode in modes]
        if not wanted:
            continue
        ports = {mode: free_port() for mode in wanted}
        metrics = free_port()
        listen = {authz_mode(mode)[0]: f"127.0.0.1:{port}" for mode, port in ports.items()}
        config = {
            **sidecar,
            "listen": {**listen, "metrics": f"127.0.0.1:{metrics}"},
            **authz_mode(wanted[0])[1],
        }
        process = start_sidecar(config, workdir, name)
        for mode in wanted:
            stack.sidecars[mode] = process
            stack.metrics_ports[mode] = metrics
        authz.update(ports)
    return authz


@contextlib.contextmanager
def envoy_per_mode(
    workdir: Path,
    sidecar: dict[str, Any],
    envoy: PodEnvoy | None = None,
    modes: tuple[str, ...] = AUTHZ_MODES,
) -> Iterator[ModeStack]:
    """`sidecar`: the sidecar configuration without `listen`; `envoy`: a template whose
    ports and authz endpoint are filled in per mode."""
    template = envoy or PodEnvoy(inbound_port=0, app_port=0, admin_port=0)
    stack = ModeStack(EchoUpstream().start())
    try:
        authz = _start_sidecars(stack, sidecar, workdir, modes)
        for mode in modes:
            config = replace(
                template,
                inbound_port=free_port(),
                app_port=stack.upstream.port,
                admin_port=free_port(),
                listen_address="127.0.0.1",
                authz=AuthzEndpoint(authz_mode(mode)[0], port=authz[mode]),
            )
            stack.envoys[mode] = start_envoy(config, workdir, f"envoy-{mode}")
            stack.ports[mode] = config.inbound_port
            stack.admin_ports[mode] = config.admin_port
        yield stack
    finally:
        for process in [*stack.envoys.values(), *set(stack.sidecars.values())]:
            process.stop()
        stack.upstream.stop()


@dataclass(frozen=True)
class Exchange:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body) if self.body else {}
        return value


def read_response(sock: socket.socket, head_only: bool = False) -> Exchange:
    """One HTTP/1.1 response (Content-Length framing) from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole response head: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head_only else int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Exchange(int(lines[0].split(" ", 2)[1]), headers, body[:length])


def raw_exchange(port: int, data: bytes, timeout: float = 10, head_only: bool = False) -> Exchange:
    """Send exactly `data` on a new connection and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock, head_only)


def request_bytes(
    method: str,
    path: str,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: census"]
    if token is not None:
        lines.append(f"authorization: Bearer {token}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"content-length: {len(body)}")
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
