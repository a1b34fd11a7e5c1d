"""Signing and verification keys: generation, JWK/JWKS, RFC 7638 thumbprint kids, PEM.

The algorithm a key may be used with is a property of the key, fixed when it is
created or loaded, and never taken from a token.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm
from jwt.utils import base64url_decode

from jwtmesh.errors import JwtmeshError
from jwtmesh.tokens.encoding import b64url_encode
from jwtmesh.tokens.private_pem import load_private_pem, rendered

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKeyObject = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

DEFAULT_ALGORITHM = "ES256"
MIN_RSA_BITS = 2048

# The only algorithms jwtmesh signs or verifies with; never "none", never HS*.
_SIGNERS: dict[str, Any] = {
    "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
    "PS256": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256),
    "EdDSA": OKPAlgorithm(),
}
ALGORITHMS: frozenset[str] = frozenset(_SIGNERS)
_KTY_OF = {"ES256": "EC", "RS256": "RSA", "PS256": "RSA", "EdDSA": "OKP"}


def unused_jwk(jwk: Any) -> str | None:
    """Why a key of an IdP's JWKS is not one to verify tokens with (None: it is, or it is
    malformed and PublicKey.from_jwk says how; private material is never skipped, always
    refused)."""
    if not isinstance(jwk, dict) or "d" in jwk or "p" in jwk:
        return None
    use, alg, kty = jwk.get("use", "sig"), jwk.get("alg"), jwk.get("kty")
    if use != "sig":
        return f"use {str(use)[:20]!r}, not 'sig'"
    if alg is not None and alg not in ALGORITHMS:
        return f"alg {str(alg)[:20]!r} is not verified here (only {', '.join(sorted(ALGORITHMS))})"
    if kty not in _KTY_OF.values():
        return f"kty {str(kty)[:20]!r} is not verified here"
    if alg is None and kty == "EC" and jwk.get("crv") != "P-256":
        return f"curve {str(jwk.get('crv'))[:20]!r} is not verified here (only P-256)"
    if alg is None and kty == "OKP" and jwk.get("crv") != "Ed25519":
        return f"curve {str(jwk.get('crv'))[:20]!r} is not verified here (only Ed25519)"
    return None


def slow_to_generate(alg: str) -> bool:
    """RSA: a key takes from a tenth of a second to seconds (4096 bits: 0.8 s on average
    here, with a long tail); an EC or Ed25519 key takes well under a millisecond."""
    return _KTY_OF.get(alg) == "RSA"


class KeyMaterialError(JwtmeshError, ValueError):
    """A key or JWK is unusable (wrong type, too small, unknown algorithm)."""


def sign(alg: str, key: PrivateKey, message: bytes) -> bytes:
    signature: bytes = _SIGNERS[alg].sign(message, key)
    return signature


# Each algorithm's verify as PyJWT's `Algorithm.verify` does it (the same padding, hash and
# r||s → DER conversion), with the parameter objects built once instead of per call and
# without its per-call type dispatch: ~1.5 µs of a ~45 µs ES256 verify, on every cache miss.
# The key's type is checked when it is loaded (`_check_key_matches`).
# tests/unit/test_signature_verify.py holds these to PyJWT's answers.
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1V15 = padding.PKCS1v15()
_PSS_SHA256 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_SHA256 = hashes.SHA256()
_P256_BYTES = 32


def _verify_es256(key: Any, message: bytes, signature: bytes) -> None:
    """JWS ECDSA: r and s as fixed-width big-endian integers (RFC 7518 §3.4), never DER."""
    if len(signature) != 2 * _P256_BYTES:
        raise InvalidSignature
    r = int.from_bytes(signature[:_P256_BYTES], "big")
    s = int.from_bytes(signature[_P256_BYTES:], "big")
    key.verify(encode_dss_signature(r, s), message, _ECDSA_SHA256)


_VERIFIERS: dict[str, Any] = {
    "ES256": _verify_es256,
    "RS256": lambda key, message, signature: key.verify(signature, message, _PKCS1V15, _SHA256),
    "PS256": lambda key, message, signature: key.verify(signature, message, _PSS_SHA256, _SHA256),
    "EdDSA": lambda key, message, signature: key.verify(signature, message),
}


def verify_signature(alg: str, key: PublicKeyObject, message: bytes, signature: bytes) -> bool:
    """True only for a valid signature; malformed signatures are simply invalid."""
    try:
        _VERIFIERS[alg](key, message, signature)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _check_key_matches(alg: str, key: PrivateKey | PublicKeyObject) -> None:
    if alg not in ALGORITHMS:
        raise KeyMaterialError(f"unsupported algorithm {alg!r}; use one of {sorted(ALGORITHMS)}")
    if alg == "ES256":
        if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
            raise KeyMaterialError("ES256 needs an EC key")
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyMaterialError("ES256 needs a P-256 key")
    elif alg in ("RS256", "PS256"):
        if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            raise KeyMaterialError(f"{alg} needs an RSA key")
        if key.key_size < MIN_RSA_BITS:
            raise KeyMaterialError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    elif not isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        raise KeyMaterialError("EdDSA needs an Ed25519 key")


def public_jwk_members(key: PublicKeyObject) -> dict[str, str]:
    """The members RFC 7638 names as required for the key type, base64url-encoded."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        size = (key.curve.key_size + 7) // 8
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url_encode(numbers.x.to_bytes(size, "big")),
            "y": b64url_encode(numbers.y.to_bytes(size, "big")),
        }
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        return {
            "e": b64url_encode(
                rsa_numbers.e.to_bytes((rsa_numbers.e.bit_length() + 7) // 8, "big")
            ),
            "kty": "RSA",
            "n": b64url_encode(
                rsa_numbers.n.to_bytes((rsa_numbers.n.bit_length() + 7) // 8, "big")
            ),
        }
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(raw)}


def thumbprint(key: PublicKeyObject) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), used as the `kid`."""
    canonical = json.dumps(public_jwk_members(key), separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def _p256_public(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    """PyJWT's `ECAlgorithm.from_jwk` for a public P-256 JWK, with its checks (both
    coordinates 32 bytes after its own base64url decoding, the point on the curve: OpenSSL
    refuses any other) in a third of the time: a 10,000-issuer bundle holds 30,000 such
    keys. tests/unit/test_keys_and_bundle.py holds it to PyJWT's answers."""
    if jwk.get("crv") != "P-256" or "x" not in jwk or "y" not in jwk:
        raise KeyMaterialError("ES256 needs a P-256 JWK with x and y")
    x, y = base64url_decode(jwk["x"]), base64url_decode(jwk["y"])
    if len(x) != 32 or len(y) != 32:
        raise KeyMaterialError("P-256 coordinates are 32 bytes")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)


@dataclass(frozen=True)
class PublicKey:
    """A verification key: its kid, the one algorithm it verifies, and the key itself."""

    kid: str
    alg: str
    key: PublicKeyObject

    def to_jwk(self) -> dict[str, str]:
        return {**public_jwk_members(self.key), "kid": self.kid, "alg": self.alg, "use": "sig"}

    @classmethod
    def from_jwk(cls, jwk: Any) -> PublicKey:
        """Load a public JWK. Private members are refused; `alg` is inferred from the curve
        only where that is unambiguous (RSA keys must say RS256 or PS256)."""
        if not isinstance(jwk, dict):
            raise KeyMaterialError("a JWK must be a JSON object")
        if "d" in jwk or "p" in jwk:
            raise KeyMaterialError("a trust bundle must never contain private key material")
        kty, crv, alg = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
        if alg is None:
            alg = {"EC": "ES256" if crv == "P-256" else None, "OKP": "EdDSA"}.get(str(kty))
        if alg not in ALGORITHMS:
            raise KeyMaterialError(f"unsupported or missing JWK alg {alg!r}")
        if kty != _KTY_OF[alg]:
            raise KeyMaterialError(f"JWK kty {kty!r} does not match alg {alg}")
        if jwk.get("use", "sig") != "sig":
            raise KeyMaterialError("JWK use must be 'sig'")
        try:
            key = _p256_public(jwk) if alg == "ES256" else _SIGNERS[alg].from_jwk(jwk)
        except Exception as exc:  # PyJWT raises InvalidKeyError, ValueError, KeyError...
            raise KeyMaterialError(f"unreadable {kty} JWK") from exc
        _check_key_matches(alg, key)
        kid = jwk.get("kid")
        if kid is None:
            kid = thumbprint(key)
        if not isinstance(kid, str) or not kid:
            raise KeyMaterialError("JWK kid must be a non-empty string")
        return cls(kid=kid, alg=alg, key=key)


@dataclass(frozen=True, slots=True)
class PublicJwk:
    """A public key already checked (PublicKey.from_jwk), kept as its JWK members only.

    A parsed key holds ~2 KB of OpenSSL memory (P-256, measured); the operator publishes
    keys but verifies nothing, and holds every key of every identity: 20,000-30,000 at
    10,000 identities mid-rotation."""

    kid: str
    alg: str
    members: tuple[tuple[str, str], ...]  # public_jwk_members, in its order

    @classmethod
    def of(cls, key: PublicKey) -> PublicJwk:
        members = public_jwk_members(key.key)
        return cls(key.kid, key.alg, tuple((sys.intern(n), v) for n, v in members.items()))

    @property
    def key(self) -> PublicKeyObject:
        """Parsed again at each use: nothing on the operator's paths asks for it."""
        return PublicKey.from_jwk(self.to_jwk()).key

    def to_jwk(self) -> dict[str, str]:
        return {**dict(self.members), "kid": self.kid, "alg": self.alg, "use": "sig"}


class VerificationKey(Protocol):
    """What a trust bundle holds per kid: a PublicKey where tokens are verified, a
    PublicJwk where keys are only published."""

    @property
    def kid(self) -> str: ...

    @property
    def alg(self) -> str: ...

    @property
    def key(self) -> PublicKeyObject: ...

    def to_jwk(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class SigningKey:
    """A private key with its kid and algorithm. Never logged: repr hides the key."""

    kid: str
    alg: str
    private_key: PrivateKey

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r})"

    @property
    def public(self) -> PublicKey:
        return PublicKey(kid=self.kid, alg=self.alg, key=self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        return sign(self.alg, self.private_key, message)

    def private_pem(self) -> str:
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return rendered(pem, self.private_key).decode("ascii")

    @classmethod
    def from_pem(cls, pem: str | bytes, alg: str) -> SigningKey:
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = load_private_pem(data)
        except (ValueError, TypeError) as exc:
            raise KeyMaterialError("unreadable private key PEM") from exc
        if not isinstance(
            key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise KeyMaterialError("unsupported private key type")
        _check_key_matches(alg, key)
        return cls(kid=thumbprint(key.public_key()), alg=alg, private_key=key)


def generate_signing_key(alg: str = DEFAULT_ALGORITHM, rsa_bits: int = 3072) -> SigningKey:
    """A fresh key pair for `alg`; the kid is the public key's RFC 7638 thumbprint."""
    private_key: PrivateKey
    if alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif alg in ("RS256", "PS256"):
        if rsa_bits < MIN_RSA_BITS:
            raise KeyMaterialError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    elif alg == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise KeyMaterialError(f"unsupported algorithm {alg!r}; use one of {sorted(ALGORITHMS)}")
    return SigningKey(kid=thumbprint(private_key.public_key()), alg=alg, private_key=private_key)


def jwks(keys: list[VerificationKey]) -> dict[str, list[dict[str, str]]]:
    return {"keys": [key.to_jwk() for key in keys]}
