"""The trust bundle: issuer → its keys and revocations. This module is the file format.

The operator renders it into a ConfigMap; the sidecar parses it from the mounted file
(or builds it from a JWKS URL). `docs/formats.md` specifies it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from jwtmesh.errors import JwtmeshError
from jwtmesh.tokens.keys import KeyMaterialError, PublicKey, VerificationKey, unused_jwk

BUNDLE_FORMAT_VERSION = 1


class BundleError(JwtmeshError, ValueError):
    """The trust bundle document is unusable; the previous good one must be kept."""


@dataclass(frozen=True)
class MeshIdentity:
    """An issuer the operator published for one ServiceIdentity: who its tokens are about
    (`sub`), the namespace it lives in, and the claims a cluster admin granted it. A token
    of such an issuer must name exactly this subject and may carry no other claims."""

    subject: str
    namespace: str | None = None
    granted_claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IssuerTrust:
    """What a verifier knows about one issuer."""

    keys: Mapping[str, VerificationKey]
    # jti → the token's exp: a revocation lasts until the token would have expired anyway.
    revoked_jtis: Mapping[str, float] = field(default_factory=dict)
    # Everything this issuer issued (iat) before this time is revoked.
    revoked_before: float | None = None
    # None: an external issuer (a configured IdP): its claims are its own to make.
    mesh: MeshIdentity | None = None


@dataclass(frozen=True)
class TrustBundle:
    issuers: Mapping[str, IssuerTrust]

    def key_count(self) -> int:
        return sum(len(trust.keys) for trust in self.issuers.values())

    def merged_with(self, other: TrustBundle) -> TrustBundle:
        """Union of two sources: keys by kid, revocations from both, the later cutoff."""
        issuers = dict(self.issuers)
        for issuer, theirs in other.issuers.items():
            ours = issuers.get(issuer)
            if ours is None:
                issuers[issuer] = theirs
                continue
            cutoffs = [c for c in (ours.revoked_before, theirs.revoked_before) if c is not None]
            issuers[issuer] = IssuerTrust(
                keys={**ours.keys, **theirs.keys},
                revoked_jtis={**ours.revoked_jtis, **theirs.revoked_jtis},
                revoked_before=max(cutoffs) if cutoffs else None,
                # A binding from any source holds: a second source never loosens it.
                mesh=ours.mesh or theirs.mesh,
            )
        return TrustBundle(issuers=issuers)


EMPTY_BUNDLE = TrustBundle(issuers={})


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BundleError(f"{where} must be a number")
    return float(value)


class KeyCache:
    """The keys of the last document parsed with this cache, by their whole JWK.

    Loading a JWK costs ~10 µs (mostly the curve-point check); a bundle re-read after a
    change loads only the keys it had not seen. Memoisation only: the same JWK (every
    member equal) gives the same key, so nothing is trusted that a fresh parse would
    refuse. Holds what the last successful parse used, no more."""

    def __init__(self) -> None:
        self._last: dict[str, PublicKey] = {}
        self._next: dict[str, PublicKey] = {}

    def __len__(self) -> int:
        return len(self._last)

    def load(self, jwk: Any) -> PublicKey:
        try:
            # The whole JWK as one string (a third of a tuple's memory, ~0.3 KiB a key):
            # members and values NUL-separated, so only all-string JWKs without a NUL
            # inside a member are cached (the count below proves there is none).
            ident = "\0".join(chain.from_iterable(jwk.items()))
        except (AttributeError, TypeError):  # not an object, or a value not a string
            return PublicKey.from_jwk(jwk)  # let the parser say why
        if ident.count("\0") != 2 * len(jwk) - 1:
            return PublicKey.from_jwk(jwk)
        key = self._next.get(ident) or self._last.get(ident)
        if key is None:
            key = PublicKey.from_jwk(jwk)
        self._next[ident] = key
        return key

    def commit(self) -> None:
        """The parse succeeded: keep exactly the keys it used."""
        self._last, self._next = self._next, {}

    def abandon(self) -> None:
        """The parse failed: keep what the last good one used."""
        self._next = {}


def parse_jwks(
    document: Any,
    where: str,
    cache: KeyCache | None = None,
    skipped: list[str] | None = None,
) -> dict[str, PublicKey]:
    """A JWKS's keys by kid. Strict, as the operator's bundles are, unless `skipped` is
    given (an IdP's JWKS: parse_idp_jwks): then keys not for verifying tokens are left out
    and each is noted there, and an RSA key without `alg` is taken as RS256."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise BundleError(f"{where} must be a JWKS object with a 'keys' list")
    load = cache.load if cache is not None else PublicKey.from_jwk
    keys: dict[str, PublicKey] = {}
    for index, jwk in enumerate(document["keys"]):
        if skipped is not None:
            unused = unused_jwk(jwk)
            if unused is not None:
                skipped.append(f"keys[{index}] (kid {str(jwk.get('kid'))[:64]!r}): {unused}")
                continue
            if jwk.get("kty") == "RSA" and "alg" not in jwk:
                jwk = {**jwk, "alg": "RS256"}
        try:
            key = load(jwk)
        except KeyMaterialError as exc:
            raise BundleError(f"{where}.keys[{index}]: {exc}") from exc
        if key.kid in keys:
            raise BundleError(f"{where}: duplicate kid {key.kid!r}")
        keys[key.kid] = key
    return keys


def parse_idp_jwks(document: Any, where: str) -> tuple[dict[str, PublicKey], list[str]]:
    """An identity provider's JWKS (`jwksUrls`): (the keys, why each other key was skipped).

    IdPs publish keys a verifier of signed tokens does not use next to the ones it does:
    encryption keys (Keycloak's `use: enc`, `alg: RSA-OAEP`), algorithms not verified here
    (ES384), other curves. Those are skipped, not fatal. An RSA key without `alg` (Azure
    AD's) is taken as RS256, what such IdPs sign with. Still refused whole, so the last good
    key set stays: not a JWKS, private key material, a duplicate kid, a malformed key of a
    kind it would use, or no usable key at all."""
    skipped: list[str] = []
    keys = parse_jwks(document, where, skipped=skipped)
    if not keys:
        raise BundleError(f"{where}: no key usable for verifying tokens ({'; '.join(skipped)})")
    return keys, skipped


def _parse_revocations(entry: dict[str, Any], where: str) -> tuple[dict[str, float], float | None]:
    revocations = entry.get("revocations", {})
    if not isinstance(revocations, dict):
        raise BundleError(f"{where}.revocations must be an object")
    jtis = revocations.get("jtis", {})
    if not isinstance(jtis, dict):
        raise BundleError(f"{where}.revocations.jtis must map jti to exp")
    revoked_jtis = {
        str(jti): _number(exp, f"{where}.revocations.jtis") for jti, exp in jtis.items()
    }
    before = revocations.get("issuedBefore")
    return revoked_jtis, None if before is None else _number(before, f"{where}.issuedBefore")


def _parse_mesh(entry: dict[str, Any], where: str) -> MeshIdentity | None:
    """`subject` marks an issuer the operator published for a mesh identity."""
    subject = entry.get("subject")
    if subject is None:
        return None
    namespace = entry.get("namespace")
    claims = entry.get("claims", {})
    if not isinstance(subject, str) or not subject:
        raise BundleError(f"{where}.subject must be a non-empty string")
    if namespace is not None and not isinstance(namespace, str):
        raise BundleError(f"{where}.namespace must be a string")
    if not isinstance(claims, dict):
        raise BundleError(f"{where}.claims must be an object (the granted claims)")
    return MeshIdentity(subject=subject, namespace=namespace, granted_claims=claims)


def parse_bundle(data: bytes, cache: KeyCache | None = None) -> TrustBundle:
    """Parse and validate a whole bundle document; any error rejects all of it. With a
    `cache`, keys seen in the last document parsed with it are not loaded again."""
    try:
        bundle = _parse_bundle(data, cache)
    except BaseException:
        if cache is not None:
            cache.abandon()
        raise
    if cache is not None:
        cache.commit()
    return bundle


def _parse_bundle(data: bytes, cache: KeyCache | None) -> TrustBundle:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"trust bundle is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BundleError("trust bundle must be a JSON object")
    if document.get("version") != BUNDLE_FORMAT_VERSION:
        raise BundleError(f"unsupported trust bundle version {document.get('version')!r}")
    raw_issuers = document.get("issuers")
    if not isinstance(raw_issuers, dict):
        raise BundleError("trust bundle needs an 'issuers' object")
    issuers: dict[str, IssuerTrust] = {}
    for issuer, entry in raw_issuers.items():
        where = f"issuers[{issuer!r}]"
        if not isinstance(entry, dict):
            raise BundleError(f"{where} must be an object")
        revoked_jtis, revoked_before = _parse_revocations(entry, where)
        issuers[issuer] = IssuerTrust(
            keys=parse_jwks(entry.get("jwks"), f"{where}.jwks", cache),
            revoked_jtis=revoked_jtis,
            revoked_before=revoked_before,
            mesh=_parse_mesh(entry, where),
        )
    return TrustBundle(issuers=issuers)


def render_issuer(trust: IssuerTrust) -> bytes:
    """One issuer's entry of the canonical document (its JWKS, binding and revocations).
    The operator keeps these bytes per issuer and renders them again only when the
    issuer's trust changes (`assemble_bundle` joins them)."""
    entry: dict[str, Any] = {
        "jwks": {"keys": [trust.keys[kid].to_jwk() for kid in sorted(trust.keys)]}
    }
    if trust.mesh is not None:
        entry["subject"] = trust.mesh.subject
        if trust.mesh.namespace is not None:
            entry["namespace"] = trust.mesh.namespace
        if trust.mesh.granted_claims:
            entry["claims"] = dict(trust.mesh.granted_claims)
    revocations: dict[str, Any] = {}
    if trust.revoked_jtis:
        revocations["jtis"] = {jti: int(exp) for jti, exp in sorted(trust.revoked_jtis.items())}
    if trust.revoked_before is not None:
        revocations["issuedBefore"] = int(trust.revoked_before)
    if revocations:
        entry["revocations"] = revocations
    return _canonical(entry)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


_HEAD = b'{"issuers":{'
_TAIL = b'},"version":' + str(BUNDLE_FORMAT_VERSION).encode() + b"}"
EMPTY_DOCUMENT_BYTES = len(_HEAD) + len(_TAIL)


def issuer_member(issuer: str, entry: bytes) -> bytes:
    """`"<issuer>":<entry>`, as the canonical document holds it."""
    return _canonical(issuer) + b":" + entry


def assemble_members(members: Iterable[bytes]) -> bytes:
    """The canonical document from `issuer_member` bytes already in issuer order."""
    return _HEAD + b",".join(members) + _TAIL


def assemble_bundle(members: Mapping[str, bytes]) -> bytes:
    """The canonical document from issuer → `issuer_member` bytes: byte for byte what
    `render_bundle` gives for the same issuers (json.dumps with sorted keys)."""
    return assemble_members(members[issuer] for issuer in sorted(members))


def assembled_size(member_sizes: list[int]) -> int:
    """len(assemble_bundle(...)) for members of these sizes, without assembling."""
    return EMPTY_DOCUMENT_BYTES + sum(member_sizes) + max(0, len(member_sizes) - 1)


def render_bundle(bundle: TrustBundle) -> bytes:
    """The canonical document: sorted, compact, so equal bundles are equal bytes."""
    return assemble_bundle(
        {
            issuer: issuer_member(issuer, render_issuer(trust))
            for issuer, trust in bundle.issuers.items()
        }
    )
