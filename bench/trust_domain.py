"""A synthetic trust domain for the bundle benchmarks: N ES256 identities in the shape the
operator's sources give the publisher (issuer -> kid -> key, issuer -> mesh identity)."""

from __future__ import annotations

import time

from jwtmesh.tokens.keys import PublicKey, generate_signing_key
from jwtmesh.tokens.trust import MeshIdentity, TrustBundle
from jwtmesh_operator.bundles import build_bundle

NAMESPACES = 100


def issuer(index: int) -> str:
    return f"https://jwtmesh.cluster.local/ns/team-{index % NAMESPACES}/svc-{index:05d}"


def identities(
    count: int, keys_each: int = 3
) -> tuple[dict[str, dict[str, PublicKey]], dict[str, MeshIdentity]]:
    """`count` identities, each with `keys_each` published keys (pending, active, retired)."""
    published: dict[str, dict[str, PublicKey]] = {}
    meshes: dict[str, MeshIdentity] = {}
    for index in range(count):
        keys = [generate_signing_key().public for _ in range(keys_each)]
        published[issuer(index)] = {key.kid: key for key in keys}
        namespace = f"team-{index % NAMESPACES}"
        meshes[issuer(index)] = MeshIdentity(f"svc-{index:05d}.{namespace}", namespace)
    return published, meshes


def bundle(
    published: dict[str, dict[str, PublicKey]], meshes: dict[str, MeshIdentity]
) -> TrustBundle:
    """What the publisher builds from its sources (no revocations)."""
    return build_bundle(published, [], time.time(), meshes)
