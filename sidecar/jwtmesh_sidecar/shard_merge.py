"""What a sharded trust bundle read means: the bundle to put in force. Pure.

The kubelet swaps a projected volume as a whole, but the operator writes its objects one
API call at a time and the kubelet reads each from its own watch: a read can hold shard 3
new and shard 5 old, or shards newer than the manifest. The rules (docs/formats.md):

- Consistent (every shard the manifest names has the manifest's digest): that set is the
  bundle, exactly: keys removed and revocations expired by the operator leave.
- Half-updated: the shards read, and, from the last consistent bundle, every issuer the
  read lacks (an issuer moving between shards, a shard not yet seen) and every revocation
  (revocations only accumulate until a consistent set says otherwise). An issuer the read
  has keeps the keys it has now: a removed (compromised) key leaves at once.
- A shard that does not parse, or is missing, keeps its last good content (the caller
  passes that), which cannot match a newer manifest: the set counts as half-updated.
- With no consistent set seen yet (start-up in the middle of an update), every shard
  present counts, whatever the manifest names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jwtmesh.shards import Manifest
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle


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
    last_consistent: TrustBundle | None,
) -> Merged:
    """The bundle to put in force from the manifest and shards read (each the last good
    version of that shard), given the last bundle that came from a consistent set."""
    if manifest is not None and is_consistent(manifest, shards):
        return Merged(union(shards[i].bundle for i in range(manifest.count)), True)
    if last_consistent is None or manifest is None:
        return Merged(union(shard.bundle for _, shard in sorted(shards.items())), False)
    read = union(shards[i].bundle for i in range(manifest.count) if i in shards)
    return Merged(carry_over(read, last_consistent), False)


def union(bundles: Iterable[TrustBundle]) -> TrustBundle:
    """Every issuer of every bundle; an issuer in two (moving between shards) has the keys
    and revocations of both (`TrustBundle.merged_with`)."""
    issuers: dict[str, IssuerTrust] = {}
    for bundle in bundles:
        for issuer, trust in bundle.issuers.items():
            seen = issuers.get(issuer)
            if seen is None:
                issuers[issuer] = trust
            else:
                both = TrustBundle({issuer: seen}).merged_with(TrustBundle({issuer: trust}))
                issuers[issuer] = both.issuers[issuer]
    return TrustBundle(issuers)


def carry_over(read: TrustBundle, last: TrustBundle) -> TrustBundle:
    """`read`, plus `last`'s issuers it lacks and all of `last`'s revocations."""
    issuers = dict(read.issuers)
    for issuer, before in last.issuers.items():
        now = issuers.get(issuer)
        if now is None:
            issuers[issuer] = before
            continue
        cutoffs = [c for c in (now.revoked_before, before.revoked_before) if c is not None]
        issuers[issuer] = IssuerTrust(
            keys=now.keys,
            revoked_jtis={**before.revoked_jtis, **now.revoked_jtis},
            revoked_before=max(cutoffs) if cutoffs else None,
            mesh=now.mesh,
        )
    return TrustBundle(issuers)
