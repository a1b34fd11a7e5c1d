"""What a sharded trust bundle read means: the bundle to put in force. Pure.

The kubelet swaps a projected volume as a whole, but the operator writes its objects one
API call at a time and the kubelet reads each from its own watch: a read can hold shard 3
new and shard 5 old, or shards newer than the manifest. The rules (docs/formats.md):

- Consistent (every shard the manifest names has the manifest's digest): that set is the
  bundle, exactly: keys removed and revocations expired by the operator leave.
- Half-updated: every shard read, the ones past the manifest's count too (growth writes
  them first; the caller leaves out those known stale), plus, from the bundle in force
  (what the last read put in force), every issuer the read lacks (an issuer moving between
  shards, a shard not yet seen, an identity deleted) and every revocation: revocations only
  accumulate until a consistent set says otherwise. An issuer the read has keeps only the
  keys it has now: a removed (compromised) key leaves at once, and stays out.
- An issuer in several shards of one read (moving, one copy older): what every copy
  allows. Only the keys in every copy (a key in one copy only was removed, or is being
  pre-published and does not sign yet), the revocations of all, the latest cutoff, only
  the grants every copy has; copies bound to different subjects keep no key.
- A shard that does not parse, or is missing, keeps its last good content (the caller
  passes that), which cannot match a newer manifest: the set counts as half-updated.
- With nothing in force yet (start-up in the middle of an update): the shards read alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jwtmesh.json_values import same_json
from jwtmesh.shards import Manifest
from jwtmesh.tokens.trust import IssuerTrust, MeshIdentity, TrustBundle


@dataclass(frozen=True)
class Shard:
    """One shard as last read successfully: its digest and its content."""

    digest: str
    bundle: TrustBundle


@dataclass(frozen=True)
class Merged:
    bundle: TrustBundle
    consistent: bool


def is_consistent(manifest: Manifest | None, shards: Mapping[int, Shard]) -> bool:
    if manifest is None:
        return False
    return all(
        index in shards and shards[index].digest == wanted
        for index, wanted in enumerate(manifest.digests)
    )


def merge(
    manifest: Manifest | None,
    shards: Mapping[int, Shard],
    in_force: TrustBundle | None,
) -> Merged:
    """The bundle to put in force from the manifest and shards read (each the last good
    version of that shard), given the bundle the last read put in force."""
    if manifest is not None and is_consistent(manifest, shards):
        return Merged(combine(shards[i].bundle for i in range(manifest.count)), True)
    read = combine(shard.bundle for _, shard in sorted(shards.items()))
    return Merged(read if in_force is None else carry_over(read, in_force), False)


def combine(bundles: Iterable[TrustBundle]) -> TrustBundle:
    """Every issuer of every bundle; an issuer in several has what all its copies allow."""
    issuers: dict[str, IssuerTrust] = {}
    for bundle in bundles:
        for issuer, trust in bundle.issuers.items():
            seen = issuers.get(issuer)
            issuers[issuer] = trust if seen is None else both_allow(seen, trust)
    return TrustBundle(issuers)


def both_allow(a: IssuerTrust, b: IssuerTrust) -> IssuerTrust:
    """Two copies of one issuer: keys in both, revocations of either, grants of both."""
    jtis, cutoff = _revocations(a, b)
    if not _same_subject(a.mesh, b.mesh):
        # The operator's issuer URL names its subject, so a hand edit: trust neither
        # copy's keys until a consistent set.
        return IssuerTrust({}, revoked_jtis=jtis, revoked_before=cutoff, mesh=a.mesh)
    keys = {kid: key for kid, key in a.keys.items() if b.keys.get(kid) == key}
    mesh = _common_grants(a.mesh, b.mesh)
    return IssuerTrust(keys, revoked_jtis=jtis, revoked_before=cutoff, mesh=mesh)


def carry_over(read: TrustBundle, in_force: TrustBundle) -> TrustBundle:
    """`read`, plus `in_force`'s issuers it lacks and all of `in_force`'s revocations."""
    issuers = dict(read.issuers)
    for issuer, before in in_force.issuers.items():
        now = issuers.get(issuer)
        if now is None:
            issuers[issuer] = before
            continue
        jtis, cutoff = _revocations(now, before)
        issuers[issuer] = IssuerTrust(
            now.keys, revoked_jtis=jtis, revoked_before=cutoff, mesh=now.mesh
        )
    return TrustBundle(issuers)


def _revocations(a: IssuerTrust, b: IssuerTrust) -> tuple[dict[str, float], float | None]:
    """Every jti either revokes (until the later exp), and the later cutoff."""
    jtis = dict(a.revoked_jtis)
    for jti, until in b.revoked_jtis.items():
        jtis[jti] = max(until, jtis.get(jti, until))
    cutoffs = [c for c in (a.revoked_before, b.revoked_before) if c is not None]
    return jtis, max(cutoffs) if cutoffs else None


def _same_subject(a: MeshIdentity | None, b: MeshIdentity | None) -> bool:
    if a is None or b is None:
        return a is b  # both external, or one bound and one not
    return (a.subject, a.namespace) == (b.subject, b.namespace)


def _common_grants(a: MeshIdentity | None, b: MeshIdentity | None) -> MeshIdentity | None:
    """`a` with only the grants `b` has too, with the same value (`true` is not `1`)."""
    if a is None or b is None:
        return a
    common = {
        name: grant
        for name, grant in a.granted_claims.items()
        if name in b.granted_claims and same_json(grant, b.granted_claims[name])
    }
    return (
        a if len(common) == len(a.granted_claims) else MeshIdentity(a.subject, a.namespace, common)
    )
