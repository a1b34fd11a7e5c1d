"""A catalogue of hostile and invalid tokens, each with the reason code it must get.

Shared by the unit tests (against the Verifier) and the end-to-end suite (through a real
Envoy and sidecar), so both prove the same list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jwtmesh.tokens.encoding import b64url_encode
from jwtmesh.tokens.keys import SigningKey, generate_signing_key
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
from jwtmesh_testing import forge


@dataclass(frozen=True)
class Keys:
    """Issuer A trusts `a_es256` and `a_rsa`; issuer B trusts `b_eddsa`; nobody trusts
    `stranger`; `removed` was trusted once and is gone from the bundle."""

    issuer_a: str
    issuer_b: str
    audience: str
    a_es256: SigningKey
    a_rsa: SigningKey
    b_eddsa: SigningKey
    stranger: SigningKey
    removed: SigningKey

    @classmethod
    def generate(cls) -> Keys:
        return cls(
            issuer_a="https://mesh.test/ns/a/herald",
            issuer_b="https://mesh.test/ns/b/billing",
            audience="census.a",
            a_es256=generate_signing_key("ES256"),
            a_rsa=generate_signing_key("RS256", 2048),
            b_eddsa=generate_signing_key("EdDSA"),
            stranger=generate_signing_key("ES256"),
            removed=generate_signing_key("ES256"),
        )

    def bundle(self, now: float, revoked_jti: str, cutoff: float) -> TrustBundle:
        """What the verifier trusts: A's two keys with its revocations, and B's key."""
        return TrustBundle(
            {
                self.issuer_a: IssuerTrust(
                    {self.a_es256.kid: self.a_es256.public, self.a_rsa.kid: self.a_rsa.public},
                    revoked_jtis={revoked_jti: now + 3600},
                    revoked_before=cutoff,
                ),
                self.issuer_b: IssuerTrust({self.b_eddsa.kid: self.b_eddsa.public}),
            }
        )


def catalogue(
    k: Keys, now: float, revoked_jti: str, cutoff: float
) -> dict[str, tuple[Callable[[], str], str]]:
    """name → (make the token, expected reason). `revoked_jti` is revoked for issuer A,
    and issuer A revoked everything issued before `cutoff` (< now - 100)."""

    def claims(**changes: Any) -> dict[str, Any]:
        base = forge.standard_claims(k.issuer_a, "herald.a", k.audience, now)
        base.update(changes)
        return {key: value for key, value in base.items() if value is not None}

    def signed(
        key: SigningKey | None = None, header: dict[str, Any] | None = None, **changes: Any
    ) -> str:
        key = key or k.a_es256
        return forge.sign_with(
            key, header or {"alg": key.alg, "typ": "JWT", "kid": key.kid}, claims(**changes)
        )

    kid = k.a_es256.kid
    header = forge.segment({"alg": "ES256", "kid": kid})
    t = int(now)
    return {
        "alg none": (
            lambda: forge.unsigned({"alg": "none", "kid": kid}, claims()),
            "alg_not_allowed",
        ),
        "alg None": (
            lambda: forge.unsigned({"alg": "None", "kid": kid}, claims()),
            "alg_not_allowed",
        ),
        "alg NONE": (
            lambda: forge.unsigned({"alg": "NONE", "kid": kid}, claims()),
            "alg_not_allowed",
        ),
        "HS256 signed with the public key": (
            lambda: forge.hs256_with_public_key(k.a_rsa, claims()),
            "alg_not_allowed",
        ),
        "RS256 header on an ES256 key": (
            lambda: signed(header={"alg": "RS256", "kid": kid}),
            "alg_not_allowed",
        ),
        "PS256 header on an RS256 key": (
            lambda: signed(k.a_rsa, header={"alg": "PS256", "kid": k.a_rsa.kid}),
            "alg_not_allowed",
        ),
        "ES256 header on an RS256 key": (
            lambda: signed(k.a_rsa, header={"alg": "ES256", "kid": k.a_rsa.kid}),
            "alg_not_allowed",
        ),
        "EdDSA header on an ES256 key": (
            lambda: signed(header={"alg": "EdDSA", "kid": kid}),
            "alg_not_allowed",
        ),
        "embedded jwk header": (
            lambda: signed(
                k.stranger,
                header={"alg": "ES256", "kid": k.stranger.kid, "jwk": k.stranger.public.to_jwk()},
            ),
            "unknown_kid",
        ),
        "jku header": (
            lambda: signed(
                k.stranger,
                header={"alg": "ES256", "kid": k.stranger.kid, "jku": "https://evil.example/jwks"},
            ),
            "unknown_kid",
        ),
        "x5u header": (
            lambda: signed(
                k.stranger,
                header={"alg": "ES256", "kid": k.stranger.kid, "x5u": "https://evil.example/c"},
            ),
            "unknown_kid",
        ),
        "x5c header": (
            lambda: signed(
                k.stranger, header={"alg": "ES256", "kid": k.stranger.kid, "x5c": ["MIIB"]}
            ),
            "unknown_kid",
        ),
        "crit header": (
            lambda: signed(header={"alg": "ES256", "kid": kid, "crit": ["exp"]}),
            "unsupported_crit",
        ),
        "kid with path traversal": (
            lambda: signed(header={"alg": "ES256", "kid": "../../../etc/passwd"}),
            "unknown_kid",
        ),
        "kid with SQL": (
            lambda: signed(header={"alg": "ES256", "kid": "' OR 1=1 --"}),
            "unknown_kid",
        ),
        "kid of 10 KB": (
            lambda: signed(header={"alg": "ES256", "kid": "k" * 10_000}),
            "token_too_large",
        ),
        "kid not a string": (
            lambda: signed(header={"alg": "ES256", "kid": {"a": 1}}),
            "malformed_token",
        ),
        "duplicate JSON keys": (
            lambda: (
                b64url_encode(b'{"alg":"ES256","alg":"none","kid":"x"}')
                + "."
                + forge.segment(claims())
                + ".AA"
            ),
            "malformed_token",
        ),
        "psychic ECDSA signature": (
            lambda: signed().rsplit(".", 1)[0] + "." + b64url_encode(bytes(64)),
            "bad_signature",
        ),
        "wrong-length ECDSA signature": (
            lambda: signed().rsplit(".", 1)[0] + "." + b64url_encode(bytes(65)),
            "bad_signature",
        ),
        "DER-encoded ECDSA signature": (
            lambda: (
                signed().rsplit(".", 1)[0] + "." + b64url_encode(bytes.fromhex("3006020101020101"))
            ),
            "bad_signature",
        ),
        "bad base64": (lambda: "!!!." + forge.segment(claims()) + ".AA", "malformed_token"),
        "base64 padding": (lambda: signed().replace(".", "==.", 1), "malformed_token"),
        "whitespace inside": (lambda: signed().replace(".", ".\t", 1), "malformed_token"),
        "two parts": (lambda: ".".join(signed().split(".")[:2]), "malformed_token"),
        "four parts": (lambda: signed() + ".AA", "malformed_token"),
        "five parts": (lambda: signed() + ".AA.AA", "malformed_token"),
        "10,000-deep nested JSON": (
            lambda: header + "." + b64url_encode(b"[" * 10_000 + b"]" * 10_000) + ".AA",
            "token_too_large",
        ),
        "deep nesting under the size limit": (
            lambda: header + "." + b64url_encode(b"[" * 2_500 + b"]" * 2_500) + ".AA",
            "malformed_token",
        ),
        "non-UTF-8 payload": (
            lambda: header + "." + b64url_encode(b"\xc3\x28\xff") + ".AA",
            "malformed_token",
        ),
        "exp as a string": (lambda: signed(exp=str(t + 60)), "invalid_claim"),
        "exp as a float far away": (lambda: signed(exp=float(t) + 1e12), "lifetime_too_long"),
        "exp huge": (lambda: signed(exp=10**40), "lifetime_too_long"),
        "exp in the past": (lambda: signed(exp=t - 120, iat=t - 200, nbf=t - 200), "token_expired"),
        "nbf in the future beyond leeway": (
            lambda: signed(nbf=t + 600, iat=None),
            "token_not_yet_valid",
        ),
        "iat in the future beyond leeway": (
            lambda: signed(iat=t + 600, nbf=None),
            "token_issued_in_future",
        ),
        "aud list without us": (lambda: signed(aud=["billing.b", "ledger.c"]), "wrong_audience"),
        "issuer A's token signed with issuer B's key": (lambda: signed(k.b_eddsa), "unknown_kid"),
        "issuer B's key for a token claiming issuer A": (
            lambda: signed(k.b_eddsa, header={"alg": "EdDSA", "kid": k.b_eddsa.kid}),
            "unknown_kid",
        ),
        "unknown issuer": (
            lambda: signed(k.stranger, iss="https://evil.example/x"),
            "unknown_issuer",
        ),
        "revoked jti": (lambda: signed(jti=revoked_jti), "token_revoked"),
        "issued before the revocation cutoff": (
            lambda: signed(iat=int(cutoff) - 10, nbf=None, exp=int(cutoff) + 300),
            "token_revoked",
        ),
        "a removed kid": (lambda: signed(k.removed), "unknown_kid"),
        "tampered payload": (
            lambda: forge.tamper_payload(signed(), sub="admin.a"),
            "bad_signature",
        ),
        "missing sub": (lambda: signed(sub=None), "missing_claim"),
        "missing exp": (lambda: signed(exp=None), "missing_claim"),
    }
