"""The token core shared by the operator, the sidecar and the CLI.

Keys (generation, JWK/JWKS, thumbprint kids), minting, and verification against a
trust bundle that maps each issuer to its own keys. Everything here is pure: the
clock is always an argument.
"""

from jwtmesh.tokens.errors import TokenError
from jwtmesh.tokens.keys import PublicKey, SigningKey, generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.verify import VerifiedToken, Verifier, VerifierSettings

__all__ = [
    "PublicKey",
    "SigningKey",
    "TokenError",
    "VerifiedToken",
    "Verifier",
    "VerifierSettings",
    "generate_signing_key",
    "mint_token",
]
