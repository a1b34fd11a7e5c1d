"""What every trust bundle should contain. Pure: published keys + revocations + clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jwtmesh.tokens.keys import VerificationKey
from jwtmesh.tokens.trust import IssuerTrust, MeshIdentity, TrustBundle
from jwtmesh.tokens.verify import MAX_LEEWAY

CONFIGMAP_LIMIT = 1024 * 1024  # etcd's object limit for a ConfigMap's data


@dataclass(frozen=True)
class Revocation:
    issuer: str
    jti: str | None = None
    expires_at: float | None = None  # for a jti
    issued_before: float | None = None
    kid: str | None = None  # compromised key: removed from every bundle


def build_bundle(
    published: Mapping[str, Mapping[str, VerificationKey]],
    revocations: Iterable[Revocation],
    now: float,
    meshes: Mapping[str, MeshIdentity] | None = None,
) -> TrustBundle:
    """Issuer → keys from every identity's Secret, minus compromised kids, with revocations.
    A jti revocation is dropped once its token could no longer verify anyway: past its exp
    plus the largest leeway a verifier may allow (a sidecar's own is at most that)."""
    compromised: dict[str, set[str]] = {}
    jtis: dict[str, dict[str, float]] = {}
    cutoffs: dict[str, float] = {}
    for revocation in revocations:
        if revocation.kid is not None:
            compromised.setdefault(revocation.issuer, set()).add(revocation.kid)
        elif revocation.jti is not None and revocation.expires_at is not None:
            if revocation.expires_at + MAX_LEEWAY >= now:
                jtis.setdefault(revocation.issuer, {})[revocation.jti] = revocation.expires_at
        elif revocation.issued_before is not None:
            cutoffs[revocation.issuer] = max(
                revocation.issued_before, cutoffs.get(revocation.issuer, 0.0)
            )
    issuers = {}
    for issuer, keys in published.items():
        bad = compromised.get(issuer, set())
        issuers[issuer] = IssuerTrust(
            keys={kid: key for kid, key in keys.items() if kid not in bad},
            revoked_jtis=jtis.get(issuer, {}),
            revoked_before=cutoffs.get(issuer),
            mesh=(meshes or {}).get(issuer),
        )
    return TrustBundle(issuers)


def compromised_kids(revocations: Iterable[Revocation], issuer: str) -> frozenset[str]:
    return frozenset(r.kid for r in revocations if r.issuer == issuer and r.kid is not None)
