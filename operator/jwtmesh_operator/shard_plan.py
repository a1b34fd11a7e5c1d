"""Which shard holds which issuer, how many shards, in which order to write them. Pure.

An issuer's shard is a jump consistent hash (Lamping & Veach, 2014) of its SHA-256 over
the shard count: stable while the count stays, and when the count grows from n to n + 1
only the ~1/(n + 1) of the issuers that land in the new shard move, none between old
shards. So rotating one identity rewrites one shard, and growth moves issuers only into
the new shards. The count grows when a shard would exceed the limit and never shrinks on
its own (no issuer moves back and forth when a trust domain hovers at a boundary).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from jwtmesh.tokens.trust import assembled_size

_MASK = (1 << 64) - 1


def issuer_hash(issuer: str) -> int:
    """A 64-bit key for `jump_hash`, the same in every process (not Python's `hash`)."""
    return int.from_bytes(hashlib.sha256(issuer.encode("utf-8")).digest()[:8], "big")


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach's jump consistent hash: a bucket in [0, buckets). Growing `buckets`
    by one moves a key only into the new bucket, with probability 1/buckets."""
    if buckets < 1:
        raise ValueError("at least one bucket")
    bucket, jump = -1, 0
    while jump < buckets:
        bucket = jump
        key = (key * 2862933555777941757 + 1) & _MASK
        jump = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


@dataclass(frozen=True)
class ShardCount:
    """The count to publish with (None: the bundle does not fit `max_shards` shards), the
    largest shard at that count (or at `max_shards`), and each member's shard."""

    count: int | None
    largest: int
    shards: tuple[int, ...] = ()  # in the order of the members given


def choose_count(
    members: Sequence[tuple[int, int]],
    previous: int,
    limit: int,
    max_shards: int,
    assign: Callable[[int, int], int] = jump_hash,
) -> ShardCount:
    """The smallest count, not below `previous`, at which every shard fits `limit`.
    `members`: (issuer hash, member size in bytes) per issuer; `assign`: `jump_hash`, or
    a memo of it."""
    count = max(1, min(previous, max_shards))
    while True:
        shards = tuple(assign(key, count) for key, _ in members)
        grouped: list[list[int]] = [[] for _ in range(count)]
        for shard, (_, size) in zip(shards, members, strict=True):
            grouped[shard].append(size)
        largest = max(assembled_size(sizes) for sizes in grouped)
        if largest <= limit:
            return ShardCount(count, largest, shards)
        if count >= max_shards:
            return ShardCount(None, largest)
        count += 1


def write_phases(old_count: int, changed: Iterable[int]) -> list[list[int]]:
    """The changed shards in the order to write them, phase by phase (each phase may be
    written concurrently, the next only once it is done). Growth moves issuers only into
    the shards from `old_count` on: those are written first, so a moved issuer is in its
    new shard before it leaves its old one ("additions before removals"). The manifest
    comes after the last phase."""
    indexes = sorted(set(changed))
    gaining = [index for index in indexes if index >= old_count]
    others = [index for index in indexes if index < old_count]
    return [phase for phase in (gaining, others) if phase]
