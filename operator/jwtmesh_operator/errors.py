"""The operator room's error root: bad specs, uninjectable Pods, API conflicts."""

from __future__ import annotations

from jwtmesh.errors import JwtmeshError


class OperatorError(JwtmeshError):
    """The operator cannot act on something as asked (the message says why)."""
