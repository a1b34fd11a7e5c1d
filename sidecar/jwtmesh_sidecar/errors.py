"""The sidecar room's error root: everything the sidecar refuses to start or run with."""

from __future__ import annotations

from jwtmesh.errors import JwtmeshError


class SidecarError(JwtmeshError):
    """The sidecar cannot do what it was asked (configuration, start-up)."""
