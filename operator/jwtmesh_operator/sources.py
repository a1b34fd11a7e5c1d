"""What the trust bundle is built from, gathered from the operator's indexes. Pure.

Only keys the operator made count: a Secret's keys are published when a ServiceIdentity of
the same namespace owns it (ownerReference UID), names it as its Secret, and may be
published (tenancy.resolve_all). The issuer, subject and granted claims come from that
identity and its grants, never from the Secret's content; every kid is its key's RFC 7638
thumbprint (keystore.read_published drops any other).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jwtmesh.tokens.keys import VerificationKey
from jwtmesh.tokens.trust import MeshIdentity
from jwtmesh_operator.bundles import Revocation
from jwtmesh_operator.revocations import RevocationRecord, effective
from jwtmesh_operator.tenancy import Grant, IdentityRecord, Resolved, resolve_all


@dataclass(frozen=True)
class SecretRecord:
    """What the published-keys index keeps of one signing-key Secret. Its keys are read
    only while its identity owns it (`owns`): anyone who may create a Secret in a namespace
    can make one of this type and label, and its keys would only cost memory and time."""

    namespace: str
    name: str
    owner_uids: frozenset[str]
    keys: Mapping[str, VerificationKey] = field(default_factory=dict)
    identity: str = ""  # its jwtmesh.io/identity label: the identity it says it is for
    read: bool = True  # False: owned by no identity when it came, its keys left unread


def owns(identity: IdentityRecord | None, secret: SecretRecord) -> bool:
    """Whether the Secret is the identity's own, as reconcile._secret_taken accepts it: in
    its namespace, under the name the identity gives its Secret, labelled with the
    identity's name and owned by its UID."""
    return (
        identity is not None
        and (identity.namespace, identity.name) == (secret.namespace, secret.identity)
        and identity.secret_name == secret.name
        and bool(identity.uid)
        and identity.uid in secret.owner_uids
    )


@dataclass(frozen=True)
class BundleSources:
    published: dict[str, dict[str, VerificationKey]]  # issuer → kid → key
    meshes: dict[str, MeshIdentity]  # issuer → the identity it speaks for
    revocations: list[Revocation]
    namespaces: set[str]  # where the bundle is written
    identities: Mapping[tuple[str, str], Resolved] = field(default_factory=dict)


def published_keys(
    secrets: Iterable[SecretRecord], identities: Mapping[tuple[str, str], Resolved]
) -> tuple[dict[str, dict[str, VerificationKey]], dict[str, MeshIdentity]]:
    # Several identities may name one Secret (spec.secretName): the one owning it is its own.
    by_secret: dict[tuple[str, str], list[Resolved]] = {}
    for resolved in identities.values():
        if resolved.refusal is None:
            record = resolved.record
            by_secret.setdefault((record.namespace, record.secret_name), []).append(resolved)
    published: dict[str, dict[str, VerificationKey]] = {}
    meshes: dict[str, MeshIdentity] = {}
    for secret in secrets:
        candidates = by_secret.get((secret.namespace, secret.name), [])
        owner = next((c for c in candidates if c.record.uid in secret.owner_uids), None)
        if owner is None:
            continue  # not made by the operator for a publishable identity: ignored
        published.setdefault(owner.issuer, {}).update(secret.keys)
        meshes[owner.issuer] = MeshIdentity(
            subject=owner.audience, namespace=owner.record.namespace, granted_claims=owner.claims
        )
    return published, meshes


def gather(
    *,
    identities: Iterable[IdentityRecord],
    grants: Iterable[Grant],
    secrets: Iterable[SecretRecord],
    revocations: Iterable[RevocationRecord],
    labeled_namespaces: Iterable[str],
    trust_domain: str,
    now: float,
    resolved: Mapping[tuple[str, str], Resolved] | None = None,
) -> BundleSources:
    """`resolved`: `resolve_all` of these identities and grants, if already known."""
    if resolved is None:
        resolved = resolve_all(identities, grants, trust_domain)
    published, meshes = published_keys(secrets, resolved)
    namespaces = {namespace for namespace, _ in resolved} | set(labeled_namespaces)
    return BundleSources(
        published=published,
        meshes=meshes,
        revocations=effective(list(revocations), resolved, now),
        namespaces=namespaces,
        identities=resolved,
    )
