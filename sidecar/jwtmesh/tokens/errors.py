"""Why a token was refused: one exception tree, one stable reason code per leaf.

The reason codes are part of the public contract: they appear in 401 bodies, in the
`WWW-Authenticate` description, in metrics labels and in logs. Never rename one.
"""

from __future__ import annotations


class TokenError(Exception):
    """A token was refused. `reason` is the stable machine-readable code."""

    reason = "invalid_token"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MissingToken(TokenError):
    """The request carried no token where one was required."""

    reason = "missing_token"


class TokenTooLarge(TokenError):
    """The token is longer than the configured limit; it was not parsed at all."""

    reason = "token_too_large"


class MalformedToken(TokenError):
    """Not three base64url parts of JSON objects (bad encoding, bad JSON, duplicate keys...)."""

    reason = "malformed_token"


class UnsupportedType(TokenError):
    """The `typ` header is present and is not `JWT`."""

    reason = "unsupported_typ"


class UnsupportedCritical(TokenError):
    """The `crit` header names extensions this verifier does not implement."""

    reason = "unsupported_crit"


class AlgorithmNotAllowed(TokenError):
    """The `alg` header is not on the allow-list or does not match the key's own algorithm."""

    reason = "alg_not_allowed"


class UnknownIssuer(TokenError):
    """The `iss` claim names no issuer in the trust bundle."""

    reason = "unknown_issuer"


class UnknownKey(TokenError):
    """The `kid` is not among the keys of the token's issuer."""

    reason = "unknown_kid"


class BadSignature(TokenError):
    """The signature does not verify with the issuer's key."""

    reason = "bad_signature"


class MissingClaim(TokenError):
    """A required claim (`iss`, `sub`, `aud`, `exp`, `jti`) is absent."""

    reason = "missing_claim"


class InvalidClaim(TokenError):
    """A claim has the wrong type or an impossible value."""

    reason = "invalid_claim"


class Expired(TokenError):
    """`exp` is in the past, beyond the leeway."""

    reason = "token_expired"


class NotYetValid(TokenError):
    """`nbf` is in the future, beyond the leeway."""

    reason = "token_not_yet_valid"


class IssuedInFuture(TokenError):
    """`iat` is in the future, beyond the leeway."""

    reason = "token_issued_in_future"


class LifetimeTooLong(TokenError):
    """`exp` is further from `iat` (or from now) than the maximum lifetime."""

    reason = "lifetime_too_long"


class WrongAudience(TokenError):
    """`aud` does not contain this verifier's own identity."""

    reason = "wrong_audience"


class Revoked(TokenError):
    """The token's `jti` is revoked, or its issuer revoked everything issued before a cutoff."""

    reason = "token_revoked"


class BodyMismatch(TokenError):
    """The token's `bdy` claim does not match the SHA-256 of the request body."""

    reason = "body_mismatch"


ALL_TOKEN_ERRORS: tuple[type[TokenError], ...] = (
    TokenError,
    MissingToken,
    TokenTooLarge,
    MalformedToken,
    UnsupportedType,
    UnsupportedCritical,
    AlgorithmNotAllowed,
    UnknownIssuer,
    UnknownKey,
    BadSignature,
    MissingClaim,
    InvalidClaim,
    Expired,
    NotYetValid,
    IssuedInFuture,
    LifetimeTooLong,
    WrongAudience,
    Revoked,
    BodyMismatch,
)
