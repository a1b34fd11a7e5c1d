"""The sidecar room's error root: everything the sidecar refuses to start or run with."""

from __future__ import annotations

from jwtmesh.boundary import EXIT_ENVIRONMENT
from jwtmesh.errors import JwtmeshError


class SidecarError(JwtmeshError):
    """The sidecar cannot do what it was asked (configuration, start-up)."""


class StartupError(SidecarError, RuntimeError):
    """The sidecar cannot start (no trust bundle, bad policy, port in use...)."""

    def __init__(self, message: str, exit_code: int = EXIT_ENVIRONMENT) -> None:
        super().__init__(message)
        self.exit_code = exit_code
