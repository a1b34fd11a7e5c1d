"""Keys, JWKs, RFC 7638 kids, and the trust-bundle file format."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from jwtmesh.tokens.encoding import b64url_decode, b64url_encode
from jwtmesh.tokens.keys import (
    KeyMaterialError,
    PublicKey,
    SigningKey,
    generate_signing_key,
    thumbprint,
)
from jwtmesh.tokens.trust import BundleError, IssuerTrust, TrustBundle, parse_bundle, render_bundle

# RFC 7638 §3.1: this RSA key's SHA-256 thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
RFC7638_JWK = {
    "kty": "RSA",
    "alg": "RS256",
    "e": "AQAB",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
        "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbI"
        "SD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
}


def test_kid_is_the_rfc_7638_thumbprint() -> None:
    key = PublicKey.from_jwk({k: v for k, v in RFC7638_JWK.items()})
    assert key.kid == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert thumbprint(key.key) == key.kid


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_generated_keys_round_trip_through_jwk_and_pem(alg: str) -> None:
    key = generate_signing_key(alg, 2048)
    assert key.kid == thumbprint(key.private_key.public_key())
    assert PublicKey.from_jwk(key.public.to_jwk()).to_jwk() == key.public.to_jwk()
    again = SigningKey.from_pem(key.private_pem(), alg)
    assert again.kid == key.kid
    assert "PRIVATE" not in repr(key)
    assert "d" not in key.public.to_jwk()


@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        ({**generate_signing_key("ES256").public.to_jwk(), "d": "secret"}, "private key material"),
        ({**generate_signing_key("ES256").public.to_jwk(), "alg": "RS256"}, "does not match"),
        ({**generate_signing_key("ES256").public.to_jwk(), "alg": "HS256"}, "unsupported"),
        ({"kty": "RSA", "e": "AQAB", "n": "AQAB"}, "unsupported or missing JWK alg"),
        ({**generate_signing_key("ES256").public.to_jwk(), "use": "enc"}, "use must be 'sig'"),
        ("not an object", "JSON object"),
    ],
    ids=[
        "private member",
        "kty/alg mismatch",
        "HS256",
        "RSA without alg",
        "encryption key",
        "not an object",
    ],
)
def test_unusable_jwks_are_refused(jwk: object, message: str) -> None:
    with pytest.raises(KeyMaterialError, match=message):
        PublicKey.from_jwk(jwk)


def test_rsa_keys_below_2048_bits_are_refused() -> None:
    with pytest.raises(KeyMaterialError, match="2048"):
        generate_signing_key("RS256", 1024)


def test_a_bundle_round_trips_canonically() -> None:
    key = generate_signing_key()
    bundle = TrustBundle(
        {"https://i": IssuerTrust({key.kid: key.public}, {"j": 1800000000.0}, 1700000000.0)}
    )
    data = render_bundle(bundle)
    assert parse_bundle(data) == bundle
    assert render_bundle(parse_bundle(data)) == data


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (json.dumps({"version": 2, "issuers": {}}).encode(), "unsupported trust bundle version"),
        (json.dumps({"version": 1}).encode(), "issuers"),
        (
            json.dumps(
                {"version": 1, "issuers": {"i": {"jwks": {"keys": [{"kty": "EC"}]}}}}
            ).encode(),
            r"keys\[0\]: unsupported",
        ),
        (
            json.dumps(
                {
                    "version": 1,
                    "issuers": {
                        "i": {"jwks": {"keys": []}, "revocations": {"jtis": {"x": "soon"}}}
                    },
                }
            ).encode(),
            "must be a number",
        ),
    ],
    ids=["not JSON", "not an object", "wrong version", "no issuers", "bad key", "bad revocation"],
)
def test_a_broken_bundle_is_rejected_whole(document: bytes, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        parse_bundle(document)


def test_duplicate_kids_in_one_issuer_are_rejected() -> None:
    jwk = generate_signing_key().public.to_jwk()
    document = {"version": 1, "issuers": {"i": {"jwks": {"keys": [jwk, jwk]}}}}
    with pytest.raises(BundleError, match="duplicate kid"):
        parse_bundle(json.dumps(document).encode())


def test_merging_sources_unions_keys_and_keeps_the_later_cutoff() -> None:
    one, two = generate_signing_key(), generate_signing_key()
    first = TrustBundle({"i": IssuerTrust({one.kid: one.public}, {"a": 1.0}, 10.0)})
    second = TrustBundle({"i": IssuerTrust({two.kid: two.public}, {"b": 2.0}, 20.0)})
    merged = first.merged_with(second).issuers["i"]
    assert set(merged.keys) == {one.kid, two.kid}
    assert set(merged.revoked_jtis) == {"a", "b"}
    assert merged.revoked_before == 20.0


def _p256_cases() -> list[dict[str, Any]]:
    good = generate_signing_key("ES256").public.to_jwk()
    p = 2**256 - 2**224 + 2**192 + 2**96 - 1  # the P-256 field prime
    off_curve = dict(
        good,
        y=b64url_encode((int.from_bytes(b64url_decode(good["y"]), "big") ^ 1).to_bytes(32, "big")),
    )
    return [
        good,
        off_curve,
        dict(good, x=b64url_encode(b64url_decode(good["x"])[:31])),
        dict(good, y=b64url_encode(b"\0" + b64url_decode(good["y"]))),
        dict(good, x=good["x"] + "=="),
        dict(good, x="!" + good["x"]),
        dict(good, x=b64url_encode(p.to_bytes(32, "big"))),
        {k: v for k, v in good.items() if k != "y"},
        dict(good, crv="P-384"),
        dict(good, x=7),
    ]


@pytest.mark.parametrize(
    "jwk",
    _p256_cases(),
    ids=[
        "a good key",
        "a point off the curve",
        "x of 31 bytes",
        "y of 33 bytes",
        "padded base64",
        "a stray character",
        "x equal to the field prime",
        "no y",
        "another curve",
        "x not a string",
    ],
)
def test_the_fast_p256_loader_accepts_and_refuses_what_pyjwt_does(jwk: dict[str, Any]) -> None:
    """ES256 keys skip PyJWT's from_jwk (a 10,000-issuer bundle loads 30,000 of them);
    the answer must stay PyJWT's, key for key."""
    try:
        theirs: Any = ECAlgorithm.from_jwk({k: v for k, v in jwk.items() if k != "alg"})
    except Exception:
        theirs = None
    if theirs is not None and not isinstance(theirs.curve, ec.SECP256R1):
        theirs = None  # ES256 is P-256 only, whatever PyJWT would load
    try:
        ours: Any = PublicKey.from_jwk(jwk).key
    except KeyMaterialError:
        ours = None
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert ours.public_numbers() == theirs.public_numbers()
