"""The floor of each mode: an ext_authz server that parses nothing and decides nothing,
answering every Check with a fixed OK the size of the sidecar's (its three x-jwtmesh-*
headers). `bench/dataplane.py` runs it behind its own Envoy, so the sidecar's CPU per Check
is read against the floor's in the same run (docs/performance.md):
- `e_floor_http`: a fixed HTTP 200 on an asyncio loop, as the HTTP mode's server: what any
  Python asyncio HTTP authorizer costs;
- `e_floor_grpc` (`--grpc`): a fixed CheckResponse from the sidecar's own HTTP/2 server
  (grpc_h2.py, frames and HPACK included, no CheckRequest parsed): what the gRPC mode's
  transport costs without its handler.

    python bench/floor_authorizer.py --port 9191 [--grpc]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from typing import Any

from jwtmesh_sidecar.decide import HEADER_CLAIMS, HEADER_ISSUER, HEADER_SUBJECT, Decision
from jwtmesh_sidecar.grpc_adapter import CHECK_METHOD, response_bytes
from jwtmesh_sidecar.grpc_h2 import AsyncioServer
from jwtmesh_sidecar.grpc_server import Reply

# Sizes as the sidecar's answer to the benchmark's token (issuer, subject, ~300-byte claims).
ANSWER = (
    b"HTTP/1.1 200 OK\r\n"
    b"x-jwtmesh-issuer: https://jwtmesh.bench/ns/default/herald\r\n"
    b"x-jwtmesh-subject: herald.default\r\n"
    b"x-jwtmesh-claims: " + b"e" * 300 + b"\r\n"
    b"content-length: 0\r\n\r\n"
)


class FixedAnswer(asyncio.Protocol):
    """One fixed answer per request head; nothing else."""

    def connection_made(self, transport: Any) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._transport.write(ANSWER * data.count(b"\r\n\r\n"))


# The sidecar's allowed CheckResponse to the benchmark's token, the same three headers.
CHECK_ANSWER = Reply(
    response_bytes(
        Decision(
            allowed=True,
            status=200,
            reason="allowed",
            upstream_headers=(
                (HEADER_ISSUER, "https://jwtmesh.bench/ns/default/herald"),
                (HEADER_SUBJECT, "herald.default"),
                (HEADER_CLAIMS, "e" * 300),
            ),
        )
    )
)


def serve_grpc(port: int) -> None:
    server = AsyncioServer({CHECK_METHOD: lambda request: CHECK_ANSWER})
    server.add_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(FixedAnswer, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--grpc", action="store_true", help="gRPC ext_authz (e_floor_grpc)")
    args = parser.parse_args()
    if args.grpc:
        serve_grpc(args.port)
    else:
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
