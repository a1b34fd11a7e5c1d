"""The trust bundle rendered for publishing, redoing only what changed. No I/O.

Every issuer's member of the document (`"<issuer>":{jwks, binding, revocations}`) is
rendered once and kept as bytes until that issuer's trust changes; a shard whose members
are all the very bytes it had keeps its document and digest. So a publish after one
identity changed renders one member and assembles one shard (bench/publish_cost.py).
The single-object form (`bundle.json`, read by Pods injected before shards) is assembled
from the same members while it fits one ConfigMap.
"""

from __future__ import annotations

from dataclasses import dataclass

from jwtmesh.shards import MAX_SHARDS, SHARD_LIMIT, digest
from jwtmesh.tokens.trust import (
    IssuerTrust,
    TrustBundle,
    assemble_bundle,
    assemble_members,
    assembled_size,
    issuer_member,
    render_issuer,
)
from jwtmesh_operator import conditions as cond
from jwtmesh_operator.bundles import CONFIGMAP_LIMIT
from jwtmesh_operator.shard_plan import choose_count, issuer_hash, jump_hash

NEAR_FRACTION = 0.75  # BundleNearLimit from this share of the capacity on


@dataclass(frozen=True)
class _Member:
    trust: IssuerTrust
    data: bytes  # issuer_member(issuer, render_issuer(trust))
    key: int  # issuer_hash(issuer)


@dataclass(frozen=True)
class _Shard:
    members: tuple[bytes, ...]  # the member bytes it was assembled from, in issuer order
    document: bytes
    digest: str


@dataclass(frozen=True)
class Rendered:
    """One publish: the shards and their digests, the single-object document while it
    fits, and what the size conditions and metrics report."""

    shards: tuple[bytes, ...]
    digests: tuple[str, ...]
    issuers: tuple[tuple[str, ...], ...]  # each shard's issuers
    single: bytes | None  # None: over the single-object limit, not written any more
    total_bytes: int  # the whole bundle as one document
    largest_shard: int
    capacity: int  # max shards * shard limit
    over_limit: bool  # it does not fit the shards: nothing is written
    near_limit: bool

    @property
    def count(self) -> int:
        return len(self.shards)

    @property
    def single_frozen(self) -> bool:
        """The single-object form no longer fits: Pods reading only it see no changes."""
        return self.single is None


class BundleRenderer:
    """Renders bundles one after another, keeping per-issuer bytes and per-shard documents
    from the previous render."""

    def __init__(
        self,
        shard_limit: int = SHARD_LIMIT,
        max_shards: int = MAX_SHARDS,
        single_limit: int = CONFIGMAP_LIMIT,
    ) -> None:
        self.shard_limit = shard_limit
        self.max_shards = max_shards
        self.single_limit = single_limit
        self._members: dict[str, _Member] = {}
        self._shards: list[_Shard] = []
        self._assigned: dict[tuple[int, int], int] = {}  # (issuer hash, count) -> its shard
        self.members_rendered = 0  # issuer members rendered (not reused) by the last render

    def render(self, bundle: TrustBundle, previous_count: int) -> Rendered:
        members = self._render_members(bundle)
        issuers = sorted(members)
        sizes = [len(members[issuer].data) for issuer in issuers]
        total = assembled_size(sizes)
        capacity = self.shard_limit * self.max_shards
        assigned: dict[tuple[int, int], int] = {}

        def assign(key: int, count: int) -> int:
            shard = self._assigned.get((key, count))
            if shard is None:
                shard = jump_hash(key, count)
            assigned[(key, count)] = shard
            return shard

        plan = choose_count(
            [(members[issuer].key, size) for issuer, size in zip(issuers, sizes, strict=True)],
            previous_count,
            self.shard_limit,
            self.max_shards,
            assign,
        )
        self._assigned = assigned  # what this render used, no more
        if plan.count is None:
            return Rendered((), (), (), None, total, plan.largest, capacity, True, True)
        grouped: list[list[bytes]] = [[] for _ in range(plan.count)]
        named: list[list[str]] = [[] for _ in range(plan.count)]
        for issuer, shard in zip(issuers, plan.shards, strict=True):
            grouped[shard].append(members[issuer].data)
            named[shard].append(issuer)
        self._shards = [self._shard(index, tuple(group)) for index, group in enumerate(grouped)]
        single = None
        if total < self.single_limit:
            single = assemble_bundle({issuer: members[issuer].data for issuer in issuers})
        return Rendered(
            shards=tuple(shard.document for shard in self._shards),
            digests=tuple(shard.digest for shard in self._shards),
            issuers=tuple(tuple(shard) for shard in named),
            single=single,
            total_bytes=total,
            largest_shard=plan.largest,
            capacity=capacity,
            over_limit=False,
            near_limit=total >= NEAR_FRACTION * capacity,
        )

    def _render_members(self, bundle: TrustBundle) -> dict[str, _Member]:
        rendered = 0
        members: dict[str, _Member] = {}
        for issuer, trust in bundle.issuers.items():
            member = self._members.get(issuer)
            # Equal trust: the same keys (mostly the very same objects), revocations and
            # binding, so the same bytes.
            if member is None or member.trust != trust:
                member = _Member(
                    trust, issuer_member(issuer, render_issuer(trust)), issuer_hash(issuer)
                )
                rendered += 1
            members[issuer] = member
        self._members = members
        self.members_rendered = rendered
        return members

    def _shard(self, index: int, members: tuple[bytes, ...]) -> _Shard:
        if index < len(self._shards):
            previous = self._shards[index]
            if len(previous.members) == len(members) and all(
                a is b for a, b in zip(previous.members, members, strict=True)
            ):
                return previous
        document = assemble_members(members)
        return _Shard(members, document, digest(document))


def size_condition(rendered: Rendered) -> tuple[bool, str, str]:
    """The BundleSizeOK condition a render gives every identity: (status, reason, message)."""
    size = (
        f"the trust bundle is {rendered.total_bytes} bytes"
        f" ({rendered.count} shards, capacity {rendered.capacity})"
    )
    if rendered.over_limit:
        return False, cond.BUNDLE_OVER_LIMIT, f"{size}: over its capacity, not written"
    if rendered.near_limit:
        return False, cond.BUNDLE_NEAR_LIMIT, size
    if rendered.single_frozen:
        return (
            True,
            cond.SINGLE_BUNDLE_FROZEN,
            f"{size}: too big for one ConfigMap, so Pods injected before sharded bundles "
            f"no longer see changes; restart them",
        )
    return True, cond.HEALTHY, size
