"""Verification of a compact JWS against a trust bundle, with a bounded cache.

Order matters: size, structure and header first (cheap, no key material), then the
key is found by kid *within the token's own issuer*, the signature is checked, and only
then are the claims trusted and checked.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from jwtmesh.tokens import claims as rules
from jwtmesh.tokens.cache import DEFAULT_CACHE_BYTES, VerifiedTokenCache
from jwtmesh.tokens.encoding import b64url_decode, decode_json_object
from jwtmesh.tokens.errors import (
    AlgorithmNotAllowed,
    BadSignature,
    MalformedToken,
    TokenError,
    TokenTooLarge,
    UnknownIssuer,
    UnknownKey,
)
from jwtmesh.tokens.keys import verify_signature
from jwtmesh.tokens.trust import TrustBundle

DEFAULT_LEEWAY = 30.0
# The most clock skew a verifier may be configured to tolerate: a revoked token stays in
# the bundle until its exp plus this, so no verifier accepts it after its revocation left.
MAX_LEEWAY = 300.0
DEFAULT_MAX_LIFETIME = 3600.0
DEFAULT_MAX_TOKEN_BYTES = 8192
DEFAULT_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class VerifierSettings:
    audience: str
    leeway: float = DEFAULT_LEEWAY
    max_lifetime: float = DEFAULT_MAX_LIFETIME
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES
    require_jti: bool = True
    cache_size: int = DEFAULT_CACHE_SIZE
    cache_bytes: int = DEFAULT_CACHE_BYTES


@dataclass(frozen=True)
class VerifiedToken:
    issuer: str
    subject: str
    kid: str
    jti: str | None
    expires_at: float
    claims: dict[str, Any] = field(repr=False)
    namespace: str | None = None  # a mesh identity's namespace, from the bundle
    # The bundle binds this sub to the issuer (a mesh identity): a policy may name it alone.
    subject_bound: bool = False

    @cached_property
    def claims_b64(self) -> str:
        """The verified claims as base64url JSON, computed once per cached token."""
        encoded = json.dumps(self.claims, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(encoded).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class ParsedToken:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def token_facts(parsed: ParsedToken) -> dict[str, str]:
    """iss, sub, kid and jti as the token states them (unverified): short strings only."""
    facts: dict[str, str] = {}
    for name, source in (("iss", parsed.claims), ("sub", parsed.claims), ("jti", parsed.claims)):
        value = source.get(name)
        if isinstance(value, str):
            facts[name] = value[:256]
    kid = parsed.header.get("kid")
    if isinstance(kid, str):
        facts["kid"] = kid[:256]
    return facts


# A JOSE header is the same for every token of one key ({"alg","kid","typ"}), so the decoded
# headers of the last few keys are kept: a cache miss then decodes only the payload and the
# signature. Exactly the same checks run the first time a header is seen (a header that
# fails raises and is not kept); only short headers are kept, so the memo stays a few KiB.
HEADER_MEMO_SIZE = 64
HEADER_MEMO_CHARS = 256


@lru_cache(maxsize=HEADER_MEMO_SIZE)
def _remembered_header(segment: str) -> dict[str, Any]:
    return decode_json_object(b64url_decode(segment), "header")


def decode_header(segment: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, strictly decoded; a copy the caller may keep."""
    if len(segment) > HEADER_MEMO_CHARS:
        return decode_json_object(b64url_decode(segment), "header")
    return dict(_remembered_header(segment))


def parse_token(token: str, max_bytes: int) -> ParsedToken:
    """Split and decode a compact JWS without trusting any of it."""
    if len(token) > max_bytes:
        raise TokenTooLarge(f"the token is {len(token)} bytes, more than the {max_bytes} allowed")
    if not token.isascii():
        raise MalformedToken("the token is not ASCII")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedToken(f"a JWS has 3 parts, this token has {len(parts)}")
    header = decode_header(parts[0])
    claims = decode_json_object(b64url_decode(parts[1]), "payload")
    signature = b64url_decode(parts[2])
    signing_input = token[: len(parts[0]) + 1 + len(parts[1])].encode("ascii")
    return ParsedToken(header, claims, signing_input, signature)


class Verifier:
    """Verifies tokens against one immutable bundle snapshot.

    A new bundle means a new Verifier, so the cache of verified tokens is dropped with
    it: a removed key or a new revocation can never be masked by a cached success.
    """

    def __init__(self, bundle: TrustBundle, settings: VerifierSettings) -> None:
        self.bundle = bundle
        self.settings = settings
        self.cache = VerifiedTokenCache(settings.cache_size, settings.cache_bytes)

    @property
    def cache_hits(self) -> int:
        return self.cache.hits

    @property
    def cache_misses(self) -> int:
        return self.cache.misses

    def verify(self, token: str, now: float) -> VerifiedToken:
        cached = self.cache.get(token, now, self.settings.leeway)
        if cached is not None:
            return cached
        verified = self.verify_uncached(token, now)
        self.cache.put(token, verified)
        return verified

    def verify_uncached(self, token: str, now: float) -> VerifiedToken:
        parsed = parse_token(token, self.settings.max_token_bytes)
        try:
            return self._verify_parsed(parsed, now)
        except TokenError as error:
            # What the token says about itself (unverified), for the refusal's log line.
            error.token_facts = token_facts(parsed)
            raise

    def _verify_parsed(self, parsed: ParsedToken, now: float) -> VerifiedToken:
        settings = self.settings
        alg, kid = rules.check_header(parsed.header)
        issuer = rules.issuer_of(parsed.claims)
        trust = self.bundle.issuers.get(issuer)
        if trust is None:
            raise UnknownIssuer(f"the token's issuer {rules.shown(issuer)} is not trusted")
        key = trust.keys.get(kid)
        if key is None:
            raise UnknownKey(
                f"kid {rules.shown(kid)} is not a key of issuer {rules.shown(issuer)} "
                f"(its kids: {rules.listed(sorted(trust.keys))})"
            )
        if key.alg != alg:
            raise AlgorithmNotAllowed(f"the key verifies {key.alg}, not {alg}")
        if not verify_signature(alg, key.key, parsed.signing_input, parsed.signature):
            raise BadSignature("the signature does not verify")
        claims = parsed.claims
        expires_at = rules.check_times(
            claims, now=now, leeway=settings.leeway, max_lifetime=settings.max_lifetime
        )
        rules.check_audience(claims, settings.audience)
        subject, jti = rules.check_identity_claims(claims, require_jti=settings.require_jti)
        rules.check_subject(trust, subject)
        rules.check_granted_claims(trust, claims)
        rules.check_revocation(trust, claims, jti)
        return VerifiedToken(
            issuer=issuer,
            subject=subject,
            kid=kid,
            jti=jti,
            expires_at=expires_at,
            claims=claims,
            namespace=trust.mesh.namespace if trust.mesh is not None else None,
            subject_bound=trust.mesh is not None,
        )
