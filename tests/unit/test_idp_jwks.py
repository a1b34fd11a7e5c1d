"""An identity provider's JWKS (`jwksUrls`, trust.parse_idp_jwks): keys a token verifier does
not use are skipped instead of refusing the whole set, as Keycloak's (an encryption key
next to the signing one) and Azure AD's (RSA keys without `alg`) would otherwise be. What
would be unsafe to skip still refuses the set, so the last good one stays."""

from __future__ import annotations

import time
from typing import Any

import pytest

from jwtmesh.tokens.keys import generate_signing_key, public_jwk_members
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import BundleError, IssuerTrust, TrustBundle, parse_idp_jwks, parse_jwks
from jwtmesh.tokens.verify import Verifier, VerifierSettings

IDP = "https://login.example.com/tenant/v2.0"
SIGNER = generate_signing_key("RS256", 2048)
ENCRYPTION = generate_signing_key("RS256", 2048)


def signing_jwk(**changes: Any) -> dict[str, Any]:
    return {**SIGNER.public.to_jwk(), **changes}


def keycloak_enc_jwk() -> dict[str, Any]:
    return {
        **public_jwk_members(ENCRYPTION.public.key),
        "kid": "enc-1",
        "use": "enc",
        "alg": "RSA-OAEP",
    }


def test_keycloaks_encryption_key_is_skipped_and_its_signing_key_kept() -> None:
    keys, skipped = parse_idp_jwks({"keys": [keycloak_enc_jwk(), signing_jwk()]}, IDP)
    assert list(keys) == [SIGNER.kid]
    assert skipped == ["keys[0] (kid 'enc-1'): use 'enc', not 'sig'"]
    with pytest.raises(BundleError, match="unsupported or missing JWK alg 'RSA-OAEP'"):
        parse_jwks({"keys": [keycloak_enc_jwk(), signing_jwk()]}, "bundle")  # ours: strict


def test_an_rsa_key_without_alg_verifies_rs256_tokens() -> None:
    """Azure AD publishes `{"kty": "RSA", "use": "sig", "kid", "n", "e", "x5c"}`."""
    jwk = signing_jwk()
    del jwk["alg"], jwk["use"]
    keys, skipped = parse_idp_jwks({"keys": [{**jwk, "x5t": "abc", "x5c": ["MIIC..."]}]}, IDP)
    assert skipped == []
    assert keys[SIGNER.kid].alg == "RS256"
    now = time.time()
    token = mint_token(SIGNER, issuer=IDP, subject="app", audience="api", now=now, lifetime=60)
    verifier = Verifier(TrustBundle({IDP: IssuerTrust(keys=keys)}), VerifierSettings("api"))
    assert verifier.verify(token, now).issuer == IDP


def test_keys_of_other_algorithms_and_curves_are_skipped() -> None:
    p384 = {"kty": "EC", "crv": "P-384", "x": "A" * 64, "y": "A" * 64}  # skipped unread
    es384 = {**p384, "kid": "es384", "alg": "ES384"}
    p384_bare = {**p384, "kid": "p384"}
    okp = {"kty": "OKP", "crv": "X25519", "x": "A" * 43, "kid": "x25519"}
    keys, skipped = parse_idp_jwks(
        {
            "keys": [
                es384,
                p384_bare,
                okp,
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                signing_jwk(),
            ]
        },
        IDP,
    )
    assert list(keys) == [SIGNER.kid]
    assert [note.split(":")[0] for note in skipped] == [
        "keys[0] (kid 'es384')",
        "keys[1] (kid 'p384')",
        "keys[2] (kid 'x25519')",
        "keys[3] (kid 'hmac')",
    ]
    assert "alg 'ES384' is not verified here" in skipped[0]
    assert "kty 'oct'" in skipped[3], "a symmetric key is never taken as a public one"


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({"keys": [keycloak_enc_jwk()]}, "no key usable for verifying tokens"),
        ({"keys": [signing_jwk(d="AQAB")]}, "private key material"),
        ({"keys": [keycloak_enc_jwk(), {**signing_jwk(), "d": "AQAB", "use": "enc"}]}, "private"),
        ({"keys": [signing_jwk(), signing_jwk()]}, "duplicate kid"),
        ({"keys": [signing_jwk(n="AQAB")]}, "keys\\[0\\]"),  # a signing key it cannot read
        ({"keys": "none"}, "must be a JWKS object"),
    ],
)
def test_what_is_unsafe_to_skip_still_refuses_the_set(document: Any, says: str) -> None:
    with pytest.raises(BundleError, match=says):
        parse_idp_jwks(document, IDP)
