"""Why a token was refused: one exception tree, one stable reason code per leaf.

The codes (and their HTTP and gRPC statuses) live in `jwtmesh.reasons`; each leaf here
names its entry there.
"""

from __future__ import annotations

from jwtmesh import reasons
from jwtmesh.errors import JwtmeshError


class TokenError(JwtmeshError):
    """A token was refused. `reason` is the stable machine-readable code."""

    reason = reasons.INVALID_TOKEN.code

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # iss, sub, kid, jti as the refused token states them (unverified), when it parsed.
        self.token_facts: dict[str, str] = {}


class MissingToken(TokenError):
    """The request carried no token where one was required."""

    reason = reasons.MISSING_TOKEN.code


class TokenTooLarge(TokenError):
    """The token is longer than the configured limit; it was not parsed at all."""

    reason = reasons.TOKEN_TOO_LARGE.code


class MalformedToken(TokenError):
    """Not three base64url parts of JSON objects (bad encoding, bad JSON, duplicate keys...)."""

    reason = reasons.MALFORMED_TOKEN.code


class UnsupportedType(TokenError):
    """The `typ` header is present and is not `JWT`."""

    reason = reasons.UNSUPPORTED_TYP.code


class UnsupportedCritical(TokenError):
    """The `crit` header names extensions this verifier does not implement."""

    reason = reasons.UNSUPPORTED_CRIT.code


class AlgorithmNotAllowed(TokenError):
    """The `alg` header is not on the allow-list or does not match the key's own algorithm."""

    reason = reasons.ALG_NOT_ALLOWED.code


class UnknownIssuer(TokenError):
    """The `iss` claim names no issuer in the trust bundle."""

    reason = reasons.UNKNOWN_ISSUER.code


class UnknownKey(TokenError):
    """The `kid` is not among the keys of the token's issuer."""

    reason = reasons.UNKNOWN_KID.code


class BadSignature(TokenError):
    """The signature does not verify with the issuer's key."""

    reason = reasons.BAD_SIGNATURE.code


class MissingClaim(TokenError):
    """A required claim (`iss`, `sub`, `aud`, `exp`, `jti`) is absent."""

    reason = reasons.MISSING_CLAIM.code


class InvalidClaim(TokenError):
    """A claim has the wrong type or an impossible value."""

    reason = reasons.INVALID_CLAIM.code


class Expired(TokenError):
    """`exp` is in the past, beyond the leeway."""

    reason = reasons.TOKEN_EXPIRED.code


class NotYetValid(TokenError):
    """`nbf` is in the future, beyond the leeway."""

    reason = reasons.TOKEN_NOT_YET_VALID.code


class IssuedInFuture(TokenError):
    """`iat` is in the future, beyond the leeway."""

    reason = reasons.TOKEN_ISSUED_IN_FUTURE.code


class LifetimeTooLong(TokenError):
    """`exp` is further from `iat` (or from now) than the maximum lifetime."""

    reason = reasons.LIFETIME_TOO_LONG.code


class WrongAudience(TokenError):
    """`aud` does not contain this verifier's own identity."""

    reason = reasons.WRONG_AUDIENCE.code


class SubjectMismatch(TokenError):
    """`sub` differs from the subject the bundle binds to the token's (mesh) issuer."""

    reason = reasons.SUBJECT_MISMATCH.code


class ClaimNotGranted(TokenError):
    """A mesh identity's token asserts a claim beyond what a cluster admin granted it."""

    reason = reasons.CLAIM_NOT_GRANTED.code


class Revoked(TokenError):
    """The token's `jti` is revoked, or its issuer revoked everything issued before a cutoff."""

    reason = reasons.TOKEN_REVOKED.code


class BodyMismatch(TokenError):
    """The token's `bdy` claim does not match the SHA-256 of the request body."""

    reason = reasons.BODY_MISMATCH.code


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
    SubjectMismatch,
    ClaimNotGranted,
    Revoked,
    BodyMismatch,
)
