"""The shard planner and the renderer: stable assignment, size limits, the manifest's
digests, and one shard rewritten per changed identity."""

from __future__ import annotations

import json

import pytest

from jwtmesh.shards import digest
from jwtmesh.tokens.keys import PublicKey, generate_signing_key
from jwtmesh.tokens.trust import (
    IssuerTrust,
    MeshIdentity,
    TrustBundle,
    parse_bundle,
    render_bundle,
)
from jwtmesh_operator import conditions as cond
from jwtmesh_operator.rendering import BundleRenderer, size_condition
from jwtmesh_operator.shard_plan import choose_count, issuer_hash, jump_hash, write_phases

KEYS = [generate_signing_key().public for _ in range(3 * 120)]


def issuer(index: int) -> str:
    return f"https://jwtmesh.cluster.local/ns/team-{index % 7}/svc-{index}"


def trust(index: int, keys: list[PublicKey] | None = None) -> IssuerTrust:
    chosen = keys if keys is not None else KEYS[3 * index : 3 * index + 3]
    return IssuerTrust(
        {key.kid: key for key in chosen},
        mesh=MeshIdentity(f"svc-{index}.team-{index % 7}", f"team-{index % 7}"),
    )


def bundle(count: int) -> TrustBundle:
    return TrustBundle({issuer(i): trust(i) for i in range(count)})


def shard_issuers(document: bytes) -> set[str]:
    return set(json.loads(document)["issuers"])


# --- jump hash ---------------------------------------------------------------------------


def test_the_assignment_is_the_same_in_every_process_and_version() -> None:
    """Not Python's salted hash: two replicas, or an operator before and after an upgrade,
    must put an issuer in the same shard (else an upgrade would move every issuer)."""
    assert issuer_hash("https://a/ns/b/c") == 0x7CA413B48DDE50C4  # SHA-256, first 8 bytes
    assert [jump_hash(key, 10) for key in (0, 1, 2**63, 12345678901234567)] == [0, 6, 5, 5]


def test_growing_the_count_moves_keys_only_into_the_new_bucket() -> None:
    keys = [issuer_hash(issuer(i)) for i in range(2000)]
    for buckets in range(1, 16):
        before = [jump_hash(key, buckets) for key in keys]
        after = [jump_hash(key, buckets + 1) for key in keys]
        moved = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert all(b == buckets for _, b in moved), "a key only ever moves to the new bucket"
        # About 1/(n+1) of them move (binomial; 5 standard deviations of slack).
        expected = len(keys) / (buckets + 1)
        assert abs(len(moved) - expected) < 5 * (expected**0.5) + 5


def test_jump_hash_spreads_evenly() -> None:
    counts = [0] * 10
    for i in range(10_000):
        counts[jump_hash(issuer_hash(issuer(i)), 10)] += 1
    assert min(counts) > 850
    assert max(counts) < 1150


# --- the count --------------------------------------------------------------------------


def test_the_count_is_the_smallest_that_fits_and_never_below_the_previous() -> None:
    members = [(issuer_hash(issuer(i)), 500) for i in range(100)]  # ~50 kB in all
    fits = choose_count(members, previous=1, limit=20_000, max_shards=16)
    assert fits.count is not None
    assert fits.largest <= 20_000
    assert choose_count(members, previous=1, limit=60_000, max_shards=16).count == 1
    kept = choose_count(members, previous=9, limit=60_000, max_shards=16)
    assert kept.count == 9, "a count, once grown, stays (no moves back and forth)"
    assert len(kept.shards) == 100
    assert set(kept.shards) <= set(range(9))


def test_a_bundle_too_big_for_every_shard_has_no_count() -> None:
    members = [(issuer_hash(issuer(i)), 500) for i in range(100)]
    over = choose_count(members, previous=1, limit=2_000, max_shards=4)
    assert over.count is None
    assert over.largest > 2_000


def test_one_issuer_bigger_than_a_shard_cannot_fit() -> None:
    members = [(issuer_hash(issuer(0)), 50_000), (issuer_hash(issuer(1)), 10)]
    assert choose_count(members, previous=1, limit=10_000, max_shards=16).count is None


# --- write order ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old_count", "changed", "phases"),
    [
        (4, [2], [[2]]),
        (0, [0, 1, 2], [[0, 1, 2]]),
        (2, [0, 1, 2, 3], [[2, 3], [0, 1]]),
        (3, [1, 4, 3], [[3, 4], [1]]),
        (3, [], []),
    ],
    ids=[
        "one identity changed: one shard",
        "first publish: every shard at once",
        "growth: new shards (gaining moved issuers) before the old ones lose them",
        "growth with another change: still new shards first",
        "nothing changed: nothing written",
    ],
)
def test_shards_gaining_moved_issuers_are_written_first(
    old_count: int, changed: list[int], phases: list[list[int]]
) -> None:
    assert write_phases(old_count, changed) == phases


# --- the renderer ---------------------------------------------------------------------


def test_the_shards_together_are_the_bundle_each_issuer_once_each_under_the_limit() -> None:
    whole = bundle(120)
    rendered = BundleRenderer(shard_limit=12_000).render(whole, previous_count=0)
    assert rendered.count > 1
    assert all(len(shard) <= 12_000 for shard in rendered.shards)
    assert rendered.largest_shard == max(len(shard) for shard in rendered.shards)
    assert rendered.digests == tuple(digest(shard) for shard in rendered.shards)
    seen: list[str] = []
    merged: dict[str, IssuerTrust] = {}
    for shard in rendered.shards:
        parsed = parse_bundle(shard)
        seen += list(parsed.issuers)
        merged.update(parsed.issuers)
        assert shard == render_bundle(parsed), "every shard is a canonical bundle document"
    assert sorted(seen) == sorted(whole.issuers), "every issuer in exactly one shard"
    assert TrustBundle(merged) == whole
    assert rendered.total_bytes == len(render_bundle(whole))


def test_the_single_object_form_is_rendered_while_it_fits_one_configmap() -> None:
    whole = bundle(40)
    fits = BundleRenderer(shard_limit=12_000, single_limit=1 << 20).render(whole, 0)
    assert fits.single == render_bundle(whole), "byte for byte what Pods before shards read"
    frozen = BundleRenderer(shard_limit=12_000, single_limit=10_000).render(whole, 0)
    assert frozen.single is None
    assert frozen.single_frozen
    assert size_condition(frozen)[:2] == (True, cond.SINGLE_BUNDLE_FROZEN)
    assert size_condition(fits)[:2] == (True, cond.HEALTHY)


def test_rotating_one_identity_renders_one_issuer_and_rewrites_one_shard() -> None:
    renderer = BundleRenderer(shard_limit=12_000)
    before = renderer.render(bundle(120), 0)
    assert renderer.members_rendered == 120
    rotated = dict(bundle(120).issuers)
    rotated[issuer(7)] = trust(7, [*KEYS[21:24], generate_signing_key().public])
    after = renderer.render(TrustBundle(rotated), before.count)
    assert renderer.members_rendered == 1, "the other issuers' bytes are reused"
    assert after.count == before.count
    changed = [i for i in range(after.count) if after.digests[i] != before.digests[i]]
    assert len(changed) == 1
    assert issuer(7) in shard_issuers(after.shards[changed[0]])
    for index in range(after.count):
        if index not in changed:
            assert after.shards[index] is before.shards[index], "unchanged shards not reassembled"


def test_growth_moves_issuers_only_into_new_shards() -> None:
    renderer = BundleRenderer(shard_limit=12_000)
    small = renderer.render(bundle(60), 0)
    large = renderer.render(bundle(120), small.count)
    assert large.count > small.count
    for index in range(small.count):
        kept = shard_issuers(small.shards[index])
        now = shard_issuers(large.shards[index])
        old_issuers = {issuer(i) for i in range(60)}
        assert now & old_issuers <= kept, f"no old issuer moved into old shard {index}"


def test_over_capacity_nothing_is_rendered_and_every_identity_says_so() -> None:
    rendered = BundleRenderer(shard_limit=5_000, max_shards=2).render(bundle(120), 0)
    assert rendered.over_limit
    assert rendered.shards == ()
    status, reason, message = size_condition(rendered)
    assert (status, reason) == (False, cond.BUNDLE_OVER_LIMIT)
    assert str(rendered.total_bytes) in message


def test_near_the_capacity_the_condition_warns() -> None:
    whole = bundle(120)
    size = len(render_bundle(whole))
    rendered = BundleRenderer(shard_limit=int(size / 3.9), max_shards=5).render(whole, 0)  # 78%
    assert not rendered.over_limit
    assert rendered.near_limit
    assert size_condition(rendered)[:2] == (False, cond.BUNDLE_NEAR_LIMIT)
