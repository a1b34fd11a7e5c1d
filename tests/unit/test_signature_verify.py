"""`verify_signature` builds its padding and hash objects once instead of going through
PyJWT's `Algorithm.verify`; it must give PyJWT's answer for every signature, good or bad."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from jwtmesh.tokens.keys import SigningKey, generate_signing_key, verify_signature

MESSAGE = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJoZXJhbGQuZGVmYXVsdCJ9"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
PYJWT = {
    "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
    "PS256": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256),
    "EdDSA": OKPAlgorithm(),
}
KEYS = {alg: generate_signing_key(alg, 2048) for alg in PYJWT}
OTHER_KEYS = {alg: generate_signing_key(alg, 2048) for alg in PYJWT}


def _high_s(signature: bytes) -> bytes:
    """The same ECDSA signature with s replaced by n - s (valid too: ECDSA is malleable)."""
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    return r.to_bytes(32, "big") + (P256_ORDER - s).to_bytes(32, "big")


def _as_der(signature: bytes) -> bytes:
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    return encode_dss_signature(r, s)


def _flip_last(signature: bytes) -> bytes:
    return signature[:-1] + bytes([signature[-1] ^ 1])


Damage = Callable[[bytes, SigningKey], tuple[bytes, bytes]]
CASES: dict[str, Damage] = {
    "a valid signature": lambda sig, _: (MESSAGE, sig),
    "another message": lambda sig, _: (MESSAGE + b"x", sig),
    "the last byte flipped": lambda sig, _: (MESSAGE, _flip_last(sig)),
    "one byte short": lambda sig, _: (MESSAGE, sig[:-1]),
    "one byte long": lambda sig, _: (MESSAGE, sig + b"\x00"),
    "empty": lambda sig, _: (MESSAGE, b""),
    "all zero bytes": lambda sig, _: (MESSAGE, bytes(len(sig))),
    "another key's signature": lambda _, key: (MESSAGE, OTHER_KEYS[key.alg].sign(MESSAGE)),
}
EC_CASES: dict[str, Damage] = {
    "ECDSA with s = n - s": lambda sig, _: (MESSAGE, _high_s(sig)),
    "ECDSA as DER instead of r||s": lambda sig, _: (MESSAGE, _as_der(sig)),
    "ECDSA with r = 0": lambda sig, _: (MESSAGE, bytes(32) + sig[32:]),
    "ECDSA with s = n": lambda sig, _: (MESSAGE, sig[:32] + P256_ORDER.to_bytes(32, "big")),
}


def _pyjwt_says(alg: str, key: SigningKey, message: bytes, signature: bytes) -> bool:
    try:
        return bool(PYJWT[alg].verify(message, key.public.key, signature))
    except (ValueError, TypeError):
        return False


@pytest.mark.parametrize("alg", sorted(PYJWT))
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_algorithm_answers_as_pyjwt_does(alg: str, case: str) -> None:
    key = KEYS[alg]
    message, signature = CASES[case](key.sign(MESSAGE), key)
    expected = _pyjwt_says(alg, key, message, signature)
    assert verify_signature(alg, key.public.key, message, signature) is expected
    assert expected is (case == "a valid signature")


@pytest.mark.parametrize("case", sorted(EC_CASES))
def test_es256_edge_signatures_answer_as_pyjwt_does(case: str) -> None:
    key = KEYS["ES256"]
    message, signature = EC_CASES[case](key.sign(MESSAGE), key)
    expected = _pyjwt_says("ES256", key, message, signature)
    assert verify_signature("ES256", key.public.key, message, signature) is expected
