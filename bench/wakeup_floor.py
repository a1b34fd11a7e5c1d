"""What one HTTP Check costs the sidecar process beyond its Python work: the asyncio loop,
the system calls and the wake-up, measured against a server that does nothing.

    python bench/wakeup_floor.py --seconds 3

Three servers, each in its own process: `blocking` is the least a Python server can do
(a blocking recv and send per request, no event loop), `null` answers every request with a
fixed 200 on the sidecar's asyncio loop (no parsing, no decision), `jwtmesh` is the
sidecar's own AuthzHttpProtocol and DecisionService on that loop (a valid ES256 token,
answered from the answer memo, as the sidecar answers a repeated request). One
keep-alive connection from this process sends a request Envoy's ext_authz would send,
paced at a fixed rate (one request, wait for its answer, sleep to the next slot) or back
to back ("flat out"); the server's CPU per request comes from the scheduler's count of
its threads. No Envoy, no wrk: a light load, fine on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_envoy import bench_token, cpu_seconds
from split_stages import build_stack, http_bytes

from jwtmesh.tokens.keys import SigningKey, generate_signing_key
from jwtmesh_sidecar.answer_memo import MAX_ENTRIES, AnswerMemo
from jwtmesh_sidecar.http_adapter import AuthzHttpProtocol
from jwtmesh_testing.processes import free_port, wait_for_port

NULL_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
KINDS = ("blocking", "null", "jwtmesh")
UVLOOP_KINDS = ("null-uvloop", "jwtmesh-uvloop")  # measured when uvloop is importable


class NullProtocol(asyncio.Protocol):
    """One fixed answer per request head; nothing else."""

    def connection_made(self, transport: Any) -> None:
        self._transport = transport  # uvloop's transports are not asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self._transport.write(NULL_ANSWER * data.count(b"\r\n\r\n"))


class _AnyTransport(AuthzHttpProtocol):
    """The sidecar's protocol, taking uvloop's transports too."""

    def connection_made(self, transport: Any) -> None:
        self._transport = transport


def serve_blocking(port: int) -> None:
    """One connection at a time, a blocking recv and send per request."""
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(NULL_ANSWER * data.count(b"\r\n\r\n"))


async def serve(kind: str, port: int, key_pem: Path) -> None:
    if kind.startswith("null"):
        factory: Any = NullProtocol
    else:
        service = build_stack(SigningKey.from_pem(key_pem.read_bytes(), "ES256")).service
        memo = AnswerMemo(MAX_ENTRIES)  # one per loop, as in the sidecar
        factory = lambda: _AnyTransport(service, memo)  # noqa: E731
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def drive(port: int, request: bytes, rate: float | None, seconds: float) -> tuple[int, float]:
    """Requests answered and the seconds it took; `rate` None: back to back."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.monotonic()
        count = 0
        while (now := time.monotonic()) - started < seconds:
            if rate is not None and (slot := started + count / rate) > now:
                time.sleep(slot - now)
            conn.sendall(request)
            answer = conn.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
            count += 1
        return count, time.monotonic() - started


def measure(
    kind: str, key_pem: Path, request: bytes, seconds: float
) -> dict[str, dict[str, float]]:
    port = free_port()
    argv = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--key", str(key_pem)]
    server = subprocess.Popen(argv, cwd=Path(__file__).parent)
    try:
        wait_for_port(port, 30)
        drive(port, request, None, 0.5)  # warm up
        rows = {}
        for label, rate in (("100 req/s", 100.0), ("1,000 req/s", 1000.0), ("flat out", None)):
            before = cpu_seconds(server.pid)
            count, took = drive(port, request, rate, seconds)
            spent = cpu_seconds(server.pid) - before
            rows[label] = {"rps": count / took, "cpu_us_per_request": spent / count * 1e6}
        return rows
    finally:
        server.terminate()
        server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--serve", choices=KINDS + UVLOOP_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.serve == "blocking":
        serve_blocking(args.port)
    elif args.serve is not None and args.serve.endswith("uvloop"):
        import uvloop

        uvloop.run(serve(args.serve, args.port, args.key))
    elif args.serve is not None:
        asyncio.run(serve(args.serve, args.port, args.key))
    if args.serve is not None:
        return 0
    key = generate_signing_key("ES256")
    key_pem = Path(tempfile.mkdtemp(prefix="jwtmesh-floor-")) / "key.pem"
    key_pem.write_text(key.private_pem())
    request = http_bytes(bench_token(key))
    kinds = KINDS + (UVLOOP_KINDS if importlib.util.find_spec("uvloop") else ())
    figures = {kind: measure(kind, key_pem, request, args.seconds) for kind in kinds}
    print(f"{'CPU µs per request':<16}" + "".join(f"{k:>15}" for k in kinds) + "   req/s")
    for label in figures["null"]:
        rows = [figures[kind][label] for kind in kinds]
        print(
            f"{label:<16}"
            + "".join(f"{row['cpu_us_per_request']:>15.1f}" for row in rows)
            + "   "
            + " / ".join(f"{row['rps']:.0f}" for row in rows)
        )
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
