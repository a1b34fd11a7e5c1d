"""Claim rules: pure checks of a token's header and payload, the clock passed in.

Each function raises the one TokenError subclass that names what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jwtmesh.json_values import same_json
from jwtmesh.times import rfc3339, when
from jwtmesh.tokens.errors import (
    AlgorithmNotAllowed,
    ClaimNotGranted,
    Expired,
    InvalidClaim,
    IssuedInFuture,
    LifetimeTooLong,
    MalformedToken,
    MissingClaim,
    NotYetValid,
    Revoked,
    SubjectMismatch,
    UnknownKey,
    UnsupportedCritical,
    UnsupportedType,
    WrongAudience,
)
from jwtmesh.tokens.keys import ALGORITHMS
from jwtmesh.tokens.trust import IssuerTrust

MAX_KID_LENGTH = 256
MAX_JTI_LENGTH = 256
SHOWN = 80  # characters of a token's own value shown in a refusal message


def shown(value: Any) -> str:
    """A value from a token, for a refusal message: repr'd and cut short."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def listed(values: Any, most: int = 5) -> str:
    """`a, b, c` (and `... (N in all)` beyond `most`); `none` when empty."""
    items = [str(value) for value in values]
    if not items:
        return "none"
    extra = f", ... ({len(items)} in all)" if len(items) > most else ""
    return ", ".join(items[:most]) + extra


def check_header(header: Mapping[str, Any]) -> tuple[str, str]:
    """Validate the JOSE header; returns (alg, kid). `jku`, `x5u`, `jwk`, `x5c` are ignored:
    keys only ever come from the trust bundle. `b64` (RFC 7797) may only be true."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise AlgorithmNotAllowed(
            f"algorithm {str(alg)[:20]!r} is not allowed (only {listed(sorted(ALGORITHMS))})"
        )
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise UnsupportedType("typ must be JWT")
    if "crit" in header:
        raise UnsupportedCritical("crit names extensions this verifier does not understand")
    if header.get("b64", True) is not True:
        # RFC 7797: b64 false says the payload segment is not base64url; a reader that ignores
        # it decodes bytes its issuer never meant as base64url. Only the default is accepted.
        raise MalformedToken("the b64 header must be absent or true")
    kid = header.get("kid")
    if kid is None:
        raise UnknownKey("token has no kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        raise MalformedToken("kid must be a short non-empty string")
    return alg, kid


def _string_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    # Only an absent member is absent: `"jti": null` is a claim of the wrong type.
    if name not in claims:
        if required:
            raise MissingClaim(f"the {name} claim is required")
        return None
    value = claims[name]
    if not isinstance(value, str) or not value or not value.isprintable():
        # isprintable() refuses CR/LF: these values end up in HTTP headers.
        raise InvalidClaim(f"the {name} claim must be a non-empty printable string")
    return value


def _time_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    # Only an absent member is absent: `"nbf": null` is not a NumericDate.
    if name not in claims:
        if required:
            raise MissingClaim(f"the {name} claim is required")
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClaim(f"the {name} claim must be a NumericDate")
    try:
        # JSON integers are unbounded; one beyond the float range (exp = 10**400) would
        # otherwise raise OverflowError out of the time arithmetic instead of a refusal.
        number = float(value)
    except OverflowError:
        raise InvalidClaim(f"the {name} claim is out of range") from None
    if not math.isfinite(number):
        raise InvalidClaim(f"the {name} claim must be finite")
    return number


def issuer_of(claims: Mapping[str, Any]) -> str:
    issuer = _string_claim(claims, "iss", required=True)
    assert issuer is not None
    return issuer


def check_times(
    claims: Mapping[str, Any], *, now: float, leeway: float, max_lifetime: float
) -> float:
    """exp required, nbf and iat checked, lifetime bounded; returns exp in whole seconds."""
    exp = _time_claim(claims, "exp", required=True)
    assert exp is not None
    nbf = _time_claim(claims, "nbf", required=False)
    iat = _time_claim(claims, "iat", required=False)
    # exp counts in whole seconds, as PyJWT and most verifiers read it: a fractional part
    # never extends a token. nbf and iat keep theirs, which can only make them stricter.
    expires_at = math.floor(exp)
    slack = f"leeway {leeway:g} s"
    if expires_at <= now - leeway:
        raise Expired(f"the token expired at {when(expires_at, now)}; {slack}")
    if nbf is not None and nbf > now + leeway:
        raise NotYetValid(f"the token is not valid before {when(nbf, now)} (nbf); {slack}")
    if iat is not None and iat > now + leeway:
        raise IssuedInFuture(f"the token was issued at {when(iat, now)} (iat); {slack}")
    start = iat if iat is not None else (nbf if nbf is not None else now)
    if exp - start > max_lifetime:
        raise LifetimeTooLong(
            f"the token lives {exp - start:.0f} s (exp - {'iat' if iat is not None else 'nbf'}"
            f"), more than the {max_lifetime:g} s allowed"
        )
    return float(expires_at)


def check_audience(claims: Mapping[str, Any], audience: str) -> None:
    if "aud" not in claims:
        raise MissingClaim("the aud claim is required")
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise InvalidClaim("the aud claim must be a string or a list of strings")
    if audience not in audiences:
        raise WrongAudience(
            f"the token is not meant for this service: aud is {shown(aud)}, "
            f"this service is {audience!r}"
        )


def check_identity_claims(
    claims: Mapping[str, Any], *, require_jti: bool
) -> tuple[str, str | None]:
    """sub is required; jti is required unless configured otherwise. Returns (sub, jti)."""
    subject = _string_claim(claims, "sub", required=True)
    assert subject is not None
    jti = _string_claim(claims, "jti", required=require_jti)
    if jti is not None and len(jti) > MAX_JTI_LENGTH:
        raise InvalidClaim("the jti claim is too long")
    return subject, jti


# Claims every token carries for the mesh itself; any other claim is an assertion the
# issuer makes about its subject, and a mesh identity may only make the ones granted to it.
REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "bdy"})


def check_subject(trust: IssuerTrust, subject: str) -> None:
    """A mesh issuer speaks for one identity only: `sub` must be that identity."""
    if trust.mesh is not None and subject != trust.mesh.subject:
        raise SubjectMismatch(
            f"sub is {shown(subject)}, but its issuer was published for {trust.mesh.subject!r} only"
        )


def _granted(value: Any, grant: Any) -> bool:
    """`value` is within `grant`: equal (same JSON type), or, for a list grant, a value or
    list of values all in it."""
    if isinstance(grant, list):
        values = value if isinstance(value, list) else [value]
        return all(any(same_json(item, allowed) for allowed in grant) for item in values)
    return same_json(value, grant)


def check_granted_claims(trust: IssuerTrust, claims: Mapping[str, Any]) -> None:
    """Self-asserted claims are never trusted: a mesh identity's token may carry only
    claims a ClusterIdentityGrant gave it. External issuers (IdPs) keep their claims."""
    if trust.mesh is None:
        return
    granted = trust.mesh.granted_claims
    for name, value in claims.items():
        if name in REGISTERED_CLAIMS:
            continue
        if name not in granted or not _granted(value, granted[name]):
            raise ClaimNotGranted(f"the {name[:40]!r} claim was not granted to this identity")


def check_revocation(trust: IssuerTrust, claims: Mapping[str, Any], jti: str | None) -> None:
    if jti is not None and jti in trust.revoked_jtis:
        raise Revoked(f"the token's jti {shown(jti)} is revoked")
    if trust.revoked_before is not None:
        iat = claims.get("iat")
        cutoff = rfc3339(trust.revoked_before)
        # No iat means we cannot prove it was issued after the cutoff: refuse.
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise Revoked(f"the issuer revoked every token issued before {cutoff}; no iat")
        if iat < trust.revoked_before:
            issued = rfc3339(iat)
            raise Revoked(f"the issuer revoked every token issued before {cutoff}; iat {issued}")
