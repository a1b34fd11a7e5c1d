"""An RSA private key's mathematics is checked once per PEM, and only for the same bytes."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jwtmesh.tokens.keys import KeyMaterialError, SigningKey, generate_signing_key
from jwtmesh.tokens.private_pem import CHECKED, CheckedOnce, load_private_pem


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_of(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def tampered(key: rsa.RSAPrivateKey) -> bytes:
    """The same key with the last byte of its CRT coefficient changed: well-formed DER,
    wrong mathematics."""
    der = bytearray(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    der[-1] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----\n"
    ).encode()


def test_an_rsa_pem_that_passed_the_check_is_remembered_and_loads_the_same_key(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    pem = pem_of(rsa_key)
    first = SigningKey.from_pem(pem, "RS256")
    assert hashlib.sha256(pem).digest() in CHECKED
    again = SigningKey.from_pem(pem, "RS256")
    assert again.kid == first.kid
    assert again.private_key.private_numbers() == rsa_key.private_numbers()


def test_a_tampered_rsa_key_is_refused_even_after_its_original_was_checked(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    SigningKey.from_pem(pem_of(rsa_key), "RS256")
    with pytest.raises(KeyMaterialError, match="unreadable private key PEM"):
        SigningKey.from_pem(tampered(rsa_key), "RS256")
    assert hashlib.sha256(tampered(rsa_key)).digest() not in CHECKED


def test_only_rsa_keys_are_remembered() -> None:
    checked = CheckedOnce()
    load_private_pem(pem_of(ec.generate_private_key(ec.SECP256R1())), checked)
    assert len(checked) == 0


def test_past_its_limit_the_oldest_digest_is_forgotten() -> None:
    checked = CheckedOnce(limit=2)
    for digest in (b"a", b"b", b"c"):
        checked.add(digest)
    assert b"a" not in checked
    assert b"b" in checked
    assert b"c" in checked
    assert len(checked) == 2


def test_a_pem_rendered_from_a_key_held_here_counts_as_checked() -> None:
    made = generate_signing_key("RS256", rsa_bits=2048)
    pem = made.private_pem().encode("ascii")
    assert hashlib.sha256(pem).digest() in CHECKED
    assert SigningKey.from_pem(pem, "RS256").kid == made.kid
