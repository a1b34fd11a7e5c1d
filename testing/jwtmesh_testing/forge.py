"""Hand-built tokens for tests: hostile headers, wrong algorithms, tampering.

Nothing here is used by the product; it exists so the tests can say exactly what an
attacker sends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import serialization

from jwtmesh.tokens.encoding import b64url_decode, b64url_encode
from jwtmesh.tokens.keys import SigningKey


def segment(value: Any) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def standard_claims(
    issuer: str, subject: str, audience: str, now: float, **extra: Any
) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + 300,
        "jti": hashlib.sha256(f"{subject}{now}{extra}".encode()).hexdigest()[:22],
    }
    claims.update(extra)
    return claims


def sign_with(key: SigningKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Sign arbitrary header and claims with a real key (header is not validated)."""
    signing_input = segment(header) + "." + segment(claims)
    return signing_input + "." + b64url_encode(key.sign(signing_input.encode()))


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return segment(header) + "." + segment(claims) + "." + signature


def hs256_with_public_key(key: SigningKey, claims: dict[str, Any]) -> str:
    """The RS/HS confusion attack: HMAC the token with the public key's PEM as secret."""
    secret = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = segment(header) + "." + segment(claims)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url_encode(mac)


def tamper_payload(token: str, **changes: Any) -> str:
    """Change claims but keep the original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims.update(changes)
    return header + "." + segment(claims) + "." + signature
