"""The floor of the HTTP mode: an ext_authz server on the sidecar's asyncio loop that parses
nothing and decides nothing, answering every request with a fixed 200 the size of the
sidecar's (its three x-jwtmesh-* headers). `bench/dataplane.py` runs it behind its own
Envoy as the `e_floor_http` variant, so the sidecar's CPU per Check is read against what
any Python asyncio authorizer costs in the same run (docs/performance.md).

    python bench/floor_authorizer.py --port 9191
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

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


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(FixedAnswer, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
