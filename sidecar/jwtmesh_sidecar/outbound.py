"""Outbound tokens: minted with this identity's active key for a destination's audience.

Tokens are reused per audience until half their lifetime is gone or the signing key
changes, so a busy egress path signs rarely.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from jwtmesh.identity import IdentityKeys, active_key
from jwtmesh.tokens.mint import mint_token


@dataclass(frozen=True)
class MintedToken:
    token: str
    kid: str
    expires_at: float
    reuse_until: float


class OutboundMinter:
    def __init__(
        self, get_identity: Callable[[], IdentityKeys | None], default_lifetime: float = 300.0
    ) -> None:
        self._get_identity = get_identity
        self._default_lifetime = default_lifetime
        self._cache: dict[str, MintedToken] = {}
        self._lock = threading.Lock()

    def mint(
        self, audience: str, now: float, lifetime: float | None = None, body: bytes | None = None
    ) -> MintedToken | None:
        """A fresh token (never cached when bound to a body). None without an active key."""
        identity = self._get_identity()
        if identity is None:
            return None
        key = active_key(identity, now)
        if key is None:
            return None
        seconds = min(lifetime or self._default_lifetime, identity.max_lifetime)
        token = mint_token(
            key,
            issuer=identity.issuer,
            subject=identity.subject,
            audience=audience,
            now=now,
            lifetime=seconds,
            body=body,
            extra_claims=identity.claims,
        )
        issued = int(now)
        return MintedToken(token, key.kid, issued + int(seconds), issued + int(seconds) / 2)

    def token_for(self, audience: str, now: float) -> str | None:
        identity = self._get_identity()
        key = active_key(identity, now) if identity is not None else None
        if key is None:
            return None
        with self._lock:
            cached = self._cache.get(audience)
            if cached is not None and now < cached.reuse_until and cached.kid == key.kid:
                return cached.token
        minted = self.mint(audience, now)
        if minted is None:
            return None
        with self._lock:
            self._cache[audience] = minted
        return minted.token
