"""The root of every error jwtmesh raises on purpose.

Each room has its own branch under it (the token core's `TokenError`, `BundleError`, ...;
the sidecar's `SidecarError`; the operator's `OperatorError`), so a caller can catch
"any jwtmesh error" once with `JwtmeshError`, or one room's errors with its root.
"""

from __future__ import annotations


class JwtmeshError(Exception):
    """Something jwtmesh refused or could not do; the message says what, never key material."""
