"""Typed flags: each value is checked when the command line is parsed, so a bad one stops
the command with one line naming the flag (`jwtmesh.boundary`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from jwtmesh.addresses import AddressError, split_host_port

OUTPUT_FORMATS = ("text", "json")

if TYPE_CHECKING:  # click >= 8.2 types its ParamType; 8.1 (the oldest allowed) does not
    StrType = click.ParamType[str]
    PairType = click.ParamType[tuple[str, Any]]
else:
    StrType = PairType = click.ParamType


class HostPort(StrType):
    """`host:port` with a port between 1 and 65535 (`:port` means every address)."""

    name = "HOST:PORT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            split_host_port(str(value))
        except AddressError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


class Pair(PairType):
    """`LEFT=RIGHT`, both non-empty; split at the first `=` (or the last, for values that
    are URLs on the left: `ISSUER=FILE`). The right side can be checked by `right`."""

    def __init__(self, metavar: str, last: bool = False, right: StrType | None = None):
        self.name = metavar
        self._last = last
        self._right = right

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, Any]:
        if isinstance(value, tuple):
            return value
        text = str(value)
        left, sep, right = text.rpartition("=") if self._last else text.partition("=")
        if not sep or not left or not right:
            self.fail(f"{text!r} is not {self.name}", param, ctx)
        if self._right is not None:
            return left, self._right.convert(right, param, ctx)
        return left, right


class HttpUrl(StrType):
    """An absolute http(s) URL with a host; `https_only` for issuers."""

    def __init__(self, https_only: bool = False) -> None:
        self._schemes = ("https",) if https_only else ("https", "http")
        self.name = "HTTPS_URL" if https_only else "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        try:
            parts = urlsplit(text)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in self._schemes or not parts.hostname:
            wanted = " or ".join(f"{scheme}://" for scheme in self._schemes)
            self.fail(f"{text!r} is not a URL starting with {wanted} and naming a host", param, ctx)
        return text


class Name(StrType):
    """A non-empty printable string without spaces (an identity, an audience, a jti)."""

    name = "NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text or not text.isprintable() or any(c.isspace() for c in text):
            self.fail(f"{text!r} must be a non-empty printable name without spaces", param, ctx)
        return text


HOST_PORT = HostPort()
NAME = Name()


def output_option(function: Any) -> Any:
    """`-o text|json`: json for scripts (one JSON document on stdout)."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUT_FORMATS),
        default="text",
        show_default=True,
        help="Output format; json for scripts.",
    )(function)
