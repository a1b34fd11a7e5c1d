"""Every verification rule, one refusal per case, each with its typed error and reason."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from jwtmesh.tokens import errors
from jwtmesh.tokens.encoding import b64url_encode
from jwtmesh.tokens.keys import SigningKey, generate_signing_key
from jwtmesh.tokens.mint import body_hash, mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_testing import forge

NOW = 1_800_000_000.0
A = "https://mesh.test/ns/a/herald"
B = "https://mesh.test/ns/b/billing"
AUD = "census.default"
KEY_A = generate_signing_key("ES256")
KEY_B = generate_signing_key("EdDSA")
STRANGER = generate_signing_key("ES256")
RSA = generate_signing_key("RS256", 2048)


def bundle(**extra: Any) -> TrustBundle:
    return TrustBundle(
        {
            A: IssuerTrust({KEY_A.kid: KEY_A.public, RSA.kid: RSA.public}, **extra),
            B: IssuerTrust({KEY_B.kid: KEY_B.public}),
        }
    )


def verifier(**settings: Any) -> Verifier:
    return Verifier(bundle(), VerifierSettings(audience=AUD, **settings))


def claims(**changes: Any) -> dict[str, Any]:
    base = forge.standard_claims(A, "herald.a", AUD, NOW)
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _respell_last_character(token: str) -> str:
    """Set an unused low bit of the last base64url character: the bytes decode the same."""
    last = _ALPHABET.index(token[-1])
    return token[:-1] + _ALPHABET[last ^ 1]


def signed(key: SigningKey = KEY_A, header: dict[str, Any] | None = None, **changes: Any) -> str:
    return forge.sign_with(
        key, header or {"alg": key.alg, "typ": "JWT", "kid": key.kid}, claims(**changes)
    )


def test_a_valid_token_is_verified() -> None:
    verified = verifier().verify(signed(), NOW)
    assert verified.issuer == A
    assert verified.subject == "herald.a"
    assert verified.kid == KEY_A.kid


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_every_supported_algorithm_round_trips(alg: str) -> None:
    key = generate_signing_key(alg, 2048)
    token = mint_token(key, issuer=A, subject="s", audience=AUD, now=NOW, lifetime=60)
    trusted = Verifier(
        TrustBundle({A: IssuerTrust({key.kid: key.public})}), VerifierSettings(audience=AUD)
    )
    assert trusted.verify(token, NOW).kid == key.kid


REFUSALS: dict[str, tuple[Callable[[], str], type[errors.TokenError]]] = {
    "alg none": (
        lambda: forge.unsigned({"alg": "none", "kid": KEY_A.kid}, claims()),
        errors.AlgorithmNotAllowed,
    ),
    "alg None": (
        lambda: forge.unsigned({"alg": "None", "kid": KEY_A.kid}, claims()),
        errors.AlgorithmNotAllowed,
    ),
    "alg NONE": (
        lambda: forge.unsigned({"alg": "NONE", "kid": KEY_A.kid}, claims()),
        errors.AlgorithmNotAllowed,
    ),
    "HS256 signed with the public key": (
        lambda: forge.hs256_with_public_key(RSA, claims()),
        errors.AlgorithmNotAllowed,
    ),
    "RS256 header on an ES256 key": (
        lambda: signed(header={"alg": "RS256", "kid": KEY_A.kid}),
        errors.AlgorithmNotAllowed,
    ),
    "PS256 header on an RS256 key": (
        lambda: signed(RSA, header={"alg": "PS256", "kid": RSA.kid}),
        errors.AlgorithmNotAllowed,
    ),
    "issuer A's key for a token claiming issuer B": (
        lambda: signed(KEY_A, iss=B),
        errors.UnknownKey,
    ),
    "unknown issuer": (lambda: signed(iss="https://evil.example/x"), errors.UnknownIssuer),
    "unknown kid": (lambda: signed(STRANGER), errors.UnknownKey),
    "missing kid": (lambda: signed(header={"alg": "ES256"}), errors.UnknownKey),
    "kid not a string": (lambda: signed(header={"alg": "ES256", "kid": 7}), errors.MalformedToken),
    "kid of 10 KB": (
        lambda: signed(header={"alg": "ES256", "kid": "k" * 10_000}),
        errors.TokenTooLarge,
    ),
    "tampered payload": (lambda: forge.tamper_payload(signed(), sub="admin"), errors.BadSignature),
    "signature of another key": (
        lambda: forge.sign_with(STRANGER, {"alg": "ES256", "kid": KEY_A.kid}, claims()),
        errors.BadSignature,
    ),
    "psychic signature r = s = 0": (
        lambda: signed().rsplit(".", 1)[0] + "." + b64url_encode(bytes(64)),
        errors.BadSignature,
    ),
    "wrong-length ECDSA signature": (
        lambda: signed().rsplit(".", 1)[0] + "." + b64url_encode(bytes(63)),
        errors.BadSignature,
    ),
    "embedded jwk header is ignored": (
        lambda: forge.sign_with(
            STRANGER,
            {"alg": "ES256", "kid": STRANGER.kid, "jwk": STRANGER.public.to_jwk()},
            claims(),
        ),
        errors.UnknownKey,
    ),
    "jku header is never fetched": (
        lambda: forge.sign_with(
            STRANGER,
            {"alg": "ES256", "kid": STRANGER.kid, "jku": "https://evil.example/jwks"},
            claims(),
        ),
        errors.UnknownKey,
    ),
    "x5u header is never fetched": (
        lambda: forge.sign_with(
            STRANGER,
            {"alg": "ES256", "kid": STRANGER.kid, "x5u": "https://evil.example/cert"},
            claims(),
        ),
        errors.UnknownKey,
    ),
    "crit header": (
        lambda: signed(header={"alg": "ES256", "kid": KEY_A.kid, "crit": ["exp"]}),
        errors.UnsupportedCritical,
    ),
    "typ at+jwt": (
        lambda: signed(header={"alg": "ES256", "kid": KEY_A.kid, "typ": "at+jwt"}),
        errors.UnsupportedType,
    ),
    "expired beyond the leeway": (
        lambda: signed(exp=int(NOW) - 31, iat=int(NOW) - 100, nbf=int(NOW) - 100),
        errors.Expired,
    ),
    "not yet valid beyond the leeway": (
        lambda: signed(nbf=int(NOW) + 31, iat=None, exp=int(NOW) + 300),
        errors.NotYetValid,
    ),
    "issued in the future": (lambda: signed(iat=int(NOW) + 31, nbf=None), errors.IssuedInFuture),
    "lifetime over the maximum": (lambda: signed(exp=int(NOW) + 7200), errors.LifetimeTooLong),
    "exp as a string": (lambda: signed(exp=str(int(NOW) + 60)), errors.InvalidClaim),
    "exp as a boolean": (lambda: signed(exp=True), errors.InvalidClaim),
    "exp huge": (lambda: signed(exp=10**30), errors.LifetimeTooLong),
    "missing exp": (lambda: signed(exp=None), errors.MissingClaim),
    "missing iss": (lambda: signed(iss=None), errors.MissingClaim),
    "missing sub": (lambda: signed(sub=None), errors.MissingClaim),
    "missing aud": (lambda: signed(aud=None), errors.MissingClaim),
    "missing jti": (lambda: signed(jti=None), errors.MissingClaim),
    "sub with a newline": (lambda: signed(sub="herald\r\nx-admin: 1"), errors.InvalidClaim),
    "aud list without us": (lambda: signed(aud=["billing.default", "other"]), errors.WrongAudience),
    "aud of another service": (lambda: signed(aud="billing.default"), errors.WrongAudience),
    "aud not a string": (lambda: signed(aud=[1, 2]), errors.InvalidClaim),
    "two parts": (lambda: ".".join(signed().split(".")[:2]), errors.MalformedToken),
    "four parts": (lambda: signed() + ".e30", errors.MalformedToken),
    "five parts": (lambda: signed() + ".e30.e30", errors.MalformedToken),
    "padding in base64url": (lambda: signed().replace(".", "=.", 1), errors.MalformedToken),
    "whitespace inside": (lambda: signed().replace(".", " .", 1), errors.MalformedToken),
    "signature spelled with non-zero unused bits": (
        lambda: _respell_last_character(signed()),
        errors.MalformedToken,
    ),
    "standard base64 characters": (lambda: "+/" + signed(), errors.MalformedToken),
    "non-ASCII": (lambda: signed() + "é", errors.MalformedToken),
    "duplicate header member": (
        lambda: b64url_encode(b'{"alg":"ES256","alg":"none"}') + ".e30.AA",
        errors.MalformedToken,
    ),
    "duplicate claim": (
        lambda: (
            forge.segment({"alg": "ES256", "kid": KEY_A.kid})
            + "."
            + b64url_encode(b'{"sub":"a","sub":"b"}')
            + ".AA"
        ),
        errors.MalformedToken,
    ),
    "non-UTF-8 payload": (
        lambda: (
            forge.segment({"alg": "ES256", "kid": KEY_A.kid})
            + "."
            + b64url_encode(b"\xff\xfe")
            + ".AA"
        ),
        errors.MalformedToken,
    ),
    "deeply nested JSON": (
        lambda: (
            forge.segment({"alg": "ES256", "kid": KEY_A.kid})
            + "."
            + b64url_encode(b"[" * 3000 + b"]" * 3000)
            + ".AA"
        ),
        errors.MalformedToken,
    ),
    "payload is a list": (
        lambda: (
            forge.segment({"alg": "ES256", "kid": KEY_A.kid}) + "." + b64url_encode(b"[1]") + ".AA"
        ),
        errors.MalformedToken,
    ),
    "NaN in a claim": (
        lambda: (
            forge.segment({"alg": "ES256", "kid": KEY_A.kid})
            + "."
            + b64url_encode(b'{"exp": NaN}')
            + ".AA"
        ),
        errors.MalformedToken,
    ),
    "a 1 MB token": (lambda: "a" * 1_000_000, errors.TokenTooLarge),
    "empty string": (lambda: "", errors.MalformedToken),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_hostile_and_invalid_tokens_are_refused_with_their_reason(case: str) -> None:
    make, expected = REFUSALS[case]
    with pytest.raises(errors.TokenError) as refused:
        verifier().verify(make(), NOW)
    assert type(refused.value) is expected, refused.value
    assert refused.value.reason == expected.reason


def test_times_within_the_leeway_pass() -> None:
    v = verifier()
    v.verify(signed(exp=int(NOW) - 29, iat=int(NOW) - 100, nbf=int(NOW) - 100), NOW)
    v.verify(signed(nbf=int(NOW) + 29, iat=None), NOW)
    v.verify(signed(aud=["billing.default", AUD]), NOW)


def test_revoked_jti_is_refused_and_others_pass() -> None:
    token = signed(jti="stolen")
    revoking = Verifier(bundle(revoked_jtis={"stolen": NOW + 300}), VerifierSettings(audience=AUD))
    with pytest.raises(errors.Revoked):
        revoking.verify(token, NOW)
    revoking.verify(signed(jti="fine"), NOW)


@pytest.mark.parametrize(
    ("iat", "revoked"),
    [(NOW - 10, True), (NOW + 10, False), (None, True)],
    ids=["issued before the cutoff", "issued after", "no iat"],
)
def test_issuer_cutoff_revokes_everything_issued_before_it(
    iat: float | None, revoked: bool
) -> None:
    cutoff = Verifier(bundle(revoked_before=NOW), VerifierSettings(audience=AUD))
    token = signed(iat=None if iat is None else int(iat), nbf=None)
    if revoked:
        with pytest.raises(errors.Revoked):
            cutoff.verify(token, NOW + 20)
    else:
        cutoff.verify(token, NOW + 20)


def test_the_size_limit_applies_before_any_parsing() -> None:
    with pytest.raises(errors.TokenTooLarge):
        verifier(max_token_bytes=100).verify(signed(), NOW)


def test_a_cached_token_still_expires() -> None:
    v = verifier()
    token = signed(exp=int(NOW) + 60)
    v.verify(token, NOW)
    assert v.verify(token, NOW + 1).kid == KEY_A.kid
    assert v.cache_hits == 1
    with pytest.raises(errors.Expired):
        v.verify(token, NOW + 60 + 31)


def test_a_new_bundle_drops_the_cache_so_a_removed_key_stops_verifying() -> None:
    token = signed()
    Verifier(bundle(), VerifierSettings(audience=AUD)).verify(token, NOW)
    without_key = Verifier(TrustBundle({A: IssuerTrust({})}), VerifierSettings(audience=AUD))
    with pytest.raises(errors.UnknownKey):
        without_key.verify(token, NOW)


def test_the_cache_is_bounded() -> None:
    v = verifier(cache_size=3)
    for index in range(10):
        v.verify(signed(jti=f"jti-{index}"), NOW)
    assert len(v.cache) == 3


def test_verified_claims_header_is_the_claims_as_base64url_json() -> None:
    verified = verifier().verify(signed(roles=["admin"]), NOW)
    padded = verified.claims_b64 + "=" * (-len(verified.claims_b64) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded))["roles"] == ["admin"]


def test_body_hash_is_sha256_base64url() -> None:
    assert body_hash(b"abc") == b64url_encode(hashlib.sha256(b"abc").digest())


def test_a_fractional_exp_counts_in_whole_seconds() -> None:
    """exp = T + 0.5 expires at T, as PyJWT reads it: it once verified for another half second
    (PyJWT oracle, tests/property/test_pyjwt_oracle.py)."""
    token = signed(exp=NOW + 60.5, iat=int(NOW), nbf=int(NOW))
    v = verifier(leeway=0)
    assert v.verify(token, NOW + 59.9).expires_at == NOW + 60
    with pytest.raises(errors.Expired):
        verifier(leeway=0).verify(token, NOW + 60.2)
    with pytest.raises(errors.Expired):
        v.verify(token, NOW + 60.2)  # the cached success expires at the same moment


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("digits", ["1" + "0" * 400, "-1" + "0" * 400])
def test_a_time_claim_beyond_the_float_range_is_an_invalid_claim(claim: str, digits: str) -> None:
    """exp = 10**400 used to raise OverflowError out of verify(), not a TokenError."""
    members = ",".join(
        f'"{name}":{digits if name == claim else json.dumps(value)}'
        for name, value in claims().items()
    )
    token = (
        forge.segment({"alg": "ES256", "kid": KEY_A.kid})
        + "."
        + b64url_encode(("{" + members + "}").encode())
    )
    token += "." + b64url_encode(KEY_A.sign(token.encode()))
    with pytest.raises(errors.InvalidClaim):
        verifier().verify(token, NOW)


@pytest.mark.parametrize("claim", ["nbf", "iat", "jti", "sub", "iss", "aud", "exp"])
def test_a_null_claim_is_invalid_not_absent(claim: str) -> None:
    """`"nbf": null` once passed as if nbf were absent (and `"jti": null` with requireJti
    off); PyJWT refuses both. A null claim is a claim of the wrong type."""
    token = forge.sign_with(
        KEY_A, {"alg": "ES256", "typ": "JWT", "kid": KEY_A.kid}, {**claims(), claim: None}
    )
    for settings in ({}, {"require_jti": False}):
        with pytest.raises(errors.InvalidClaim):
            verifier(**settings).verify(token, NOW)


@pytest.mark.parametrize("b64", [False, 0, "false", None])
def test_a_b64_header_other_than_true_is_refused(b64: Any) -> None:
    """b64 false (RFC 7797, unencoded payload) used to be ignored, so the payload segment was
    read as base64url anyway; PyJWT refuses b64 false without crit."""
    header = {"alg": "ES256", "typ": "JWT", "kid": KEY_A.kid, "b64": b64}
    with pytest.raises(errors.MalformedToken):
        verifier().verify(signed(header=header), NOW)
    verifier().verify(signed(header={**header, "b64": True}), NOW)
