"""`host:port` listen addresses, as every flag and configuration key of jwtmesh writes them."""

from __future__ import annotations

from jwtmesh.errors import JwtmeshError


class AddressError(JwtmeshError, ValueError):
    """Not a `host:port` with a port between 1 and 65535."""


def split_host_port(value: str) -> tuple[str, int]:
    """`"127.0.0.1:9001"` → `("127.0.0.1", 9001)`; `":9001"` means every address."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise AddressError(f"{value!r} is not host:port")
    number = int(port)
    if not 0 < number < 65536:
        raise AddressError(f"{value!r}: the port must be between 1 and 65535")
    return host.strip("[]") or "0.0.0.0", number  # noqa: S104 - explicit ":port" means all
