"""Minting tokens: the claims every jwtmesh token carries, signed with the active key."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from jwtmesh.tokens.encoding import b64url_encode, compact_json
from jwtmesh.tokens.keys import SigningKey

RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "bdy"})


def body_hash(body: bytes) -> str:
    """The `bdy` claim: base64url SHA-256 of the exact request body."""
    return b64url_encode(hashlib.sha256(body).digest())


def new_jti() -> str:
    return b64url_encode(secrets.token_bytes(16))  # 128 random bits


def mint_token(
    key: SigningKey,
    *,
    issuer: str,
    subject: str,
    audience: str | list[str],
    now: float,
    lifetime: float,
    body: bytes | None = None,
    extra_claims: Mapping[str, Any] | None = None,
    jti: str | None = None,
) -> str:
    """A compact JWS for `audience`, valid from `now` for `lifetime` seconds (`jti`: a new
    random one unless the caller keeps it to recognise the token later)."""
    if lifetime <= 0:
        raise ValueError("lifetime must be positive")
    extra = dict(extra_claims or {})
    clash = RESERVED_CLAIMS.intersection(extra)
    if clash:
        raise ValueError(f"extra claims may not set {sorted(clash)}")
    issued_at = int(now)
    claims: dict[str, Any] = {
        **extra,
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + int(lifetime),
        "jti": jti or new_jti(),
    }
    if body is not None:
        claims["bdy"] = body_hash(body)
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    signing_input = b64url_encode(compact_json(header)) + "." + b64url_encode(compact_json(claims))
    signature = key.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64url_encode(signature)
