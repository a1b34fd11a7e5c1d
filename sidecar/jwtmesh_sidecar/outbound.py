"""Outbound tokens: minted with this identity's active key for a destination's audience.

Tokens are reused per audience until half their lifetime is gone, the identity file
changes (a new key, claims or lifetime), or the trust bundle revokes the token (its jti,
or a cutoff after its iat): so a busy egress path signs rarely, and a revocation made
after a theft does not block egress until the cached token would have been renewed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from jwtmesh.identity import IdentityKeys, active_key
from jwtmesh.tokens.claims import check_revocation
from jwtmesh.tokens.errors import Revoked
from jwtmesh.tokens.mint import mint_token, new_jti
from jwtmesh.tokens.trust import TrustBundle


@dataclass(frozen=True)
class MintedToken:
    token: str
    kid: str
    expires_at: float
    reuse_until: float
    issuer: str = ""
    jti: str = ""
    issued_at: float = 0.0
    identity: IdentityKeys | None = None  # the identity file it was minted from


def revoked_in(bundle: TrustBundle, minted: MintedToken) -> bool:
    """Whether the bundle revokes this token of ours (its jti, or a cutoff after its iat),
    by the verifier's own rule."""
    trust = bundle.issuers.get(minted.issuer)
    if trust is None:
        return False
    try:
        check_revocation(trust, {"iat": minted.issued_at}, minted.jti)
    except Revoked:
        return True
    return False


class OutboundMinter:
    def __init__(
        self,
        get_identity: Callable[[], IdentityKeys | None],
        default_lifetime: float = 300.0,
        get_bundle: Callable[[], TrustBundle | None] = lambda: None,
    ) -> None:
        """`get_bundle`: the trust bundle in force, if this sidecar verifies too (an
        injected one does): a token it revokes is not reused."""
        self._get_identity = get_identity
        self._default_lifetime = default_lifetime
        self._get_bundle = get_bundle
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
        jti = new_jti()
        token = mint_token(
            key,
            issuer=identity.issuer,
            subject=identity.subject,
            audience=audience,
            now=now,
            lifetime=seconds,
            body=body,
            extra_claims=identity.claims,
            jti=jti,
        )
        issued = int(now)
        return MintedToken(
            token,
            key.kid,
            issued + int(seconds),
            issued + int(seconds) / 2,
            identity.issuer,
            jti,
            issued,
            identity,
        )

    def token_for(self, audience: str, now: float) -> str | None:
        identity = self._get_identity()
        key = active_key(identity, now) if identity is not None else None
        if key is None:
            return None
        with self._lock:
            cached = self._cache.get(audience)
        if cached is not None and self._reusable(cached, identity, key.kid, now):
            return cached.token
        minted = self.mint(audience, now)
        if minted is None:
            return None
        with self._lock:
            self._cache[audience] = minted
        return minted.token

    def _reusable(
        self, cached: MintedToken, identity: IdentityKeys | None, kid: str, now: float
    ) -> bool:
        if now >= cached.reuse_until or cached.kid != kid or cached.identity is not identity:
            return False
        bundle = self._get_bundle()
        return bundle is None or not revoked_in(bundle, cached)
