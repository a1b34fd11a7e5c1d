"""The sharded trust bundle as the sidecar reads it: the manifest format, the key cache,
the merge rules for a half-updated set, and a mounted directory the way the kubelet
writes it (`..data` swap)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from jwtmesh.shards import (
    MANIFEST_FILE,
    Manifest,
    ManifestError,
    digest,
    parse_manifest,
    render_manifest,
    shard_file,
    shard_index,
)
from jwtmesh.tokens.errors import UnknownIssuer, UnknownKey
from jwtmesh.tokens.keys import SigningKey, generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import (
    IssuerTrust,
    KeyCache,
    MeshIdentity,
    TrustBundle,
    parse_bundle,
    render_bundle,
)
from jwtmesh.tokens.verify import VerifierSettings
from jwtmesh_sidecar.bundle_dir import BundleDirectory
from jwtmesh_sidecar.metrics import SidecarMetrics
from jwtmesh_sidecar.shard_merge import Shard, merge
from jwtmesh_sidecar.trust_store import TrustStore
from jwtmesh_sidecar.watch import LoadOutcome
from jwtmesh_testing.kubelet_volume import KubeletVolume

A, B, C = (f"https://mesh.test/ns/shop/{name}" for name in ("a", "b", "c"))
KEY = {name: generate_signing_key() for name in ("a1", "a2", "b1", "c1", "c2")}


def trust(*names: str, jtis: dict[str, float] | None = None) -> IssuerTrust:
    return IssuerTrust({KEY[n].kid: KEY[n].public for n in names}, revoked_jtis=jtis or {})


def doc(issuers: dict[str, IssuerTrust]) -> bytes:
    return render_bundle(TrustBundle(issuers))


def shard(issuers: dict[str, IssuerTrust]) -> Shard:
    data = doc(issuers)
    return Shard(digest(data), TrustBundle(issuers))


def kids(bundle: TrustBundle, issuer: str) -> set[str]:
    return set(bundle.issuers[issuer].keys) if issuer in bundle.issuers else set()


# --- the manifest -----------------------------------------------------------------------


def test_a_manifest_round_trips() -> None:
    manifest = Manifest(7, (digest(b"a"), digest(b"b")))
    assert parse_manifest(render_manifest(manifest)) == manifest
    assert manifest.count == 2


@pytest.mark.parametrize(
    "document",
    [
        b"{",
        b"[]",
        json.dumps({"version": 2, "generation": 1, "shards": [digest(b"")]}).encode(),
        json.dumps({"version": 1, "generation": -1, "shards": [digest(b"")]}).encode(),
        json.dumps({"version": 1, "generation": True, "shards": [digest(b"")]}).encode(),
        json.dumps({"version": 1, "generation": 1, "shards": []}).encode(),
        json.dumps({"version": 1, "generation": 1, "shards": [digest(b"")] * 17}).encode(),
        json.dumps({"version": 1, "generation": 1, "shards": ["ABC"]}).encode(),
    ],
    ids=[
        "not JSON",
        "not an object",
        "another version",
        "negative generation",
        "boolean generation",
        "no shards",
        "more shards than a Pod mounts",
        "not a SHA-256",
    ],
)
def test_an_unusable_manifest_is_refused(document: bytes) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(document)


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("shard-0.json", 0),
        ("shard-15.json", 15),
        ("shard-16.json", None),
        ("shard-01.json", None),
        ("shard-.json", None),
        ("bundle.json", None),
        ("manifest.json", None),
    ],
)
def test_only_shard_files_a_pod_mounts_have_an_index(name: str, index: int | None) -> None:
    assert shard_index(name) == index


# --- the document and the key cache ----------------------------------------------------


def test_the_rendered_document_is_the_canonical_json() -> None:
    """Rendering by joining per-issuer bytes gives what one json.dumps of the whole does."""
    bundle = TrustBundle(
        {
            "https://mesh.test/ns/ä/x": IssuerTrust(
                {KEY["a1"].kid: KEY["a1"].public},
                revoked_jtis={"j2": 20.0, "j1": 10.0},
                revoked_before=5.0,
                mesh=MeshIdentity("x.ä", "ä", {"roles": ["r"]}),
            ),
            B: trust("b1"),
        }
    )
    data = render_bundle(bundle)
    assert data == json.dumps(json.loads(data), separators=(",", ":"), sort_keys=True).encode()
    assert parse_bundle(data) == bundle


def test_the_key_cache_loads_only_keys_it_has_not_seen() -> None:
    cache = KeyCache()
    first = parse_bundle(doc({A: trust("a1"), B: trust("b1")}), cache)
    second = parse_bundle(doc({A: trust("a1", "a2"), B: trust("b1")}), cache)
    assert second.issuers[A].keys[KEY["a1"].kid] is first.issuers[A].keys[KEY["a1"].kid]
    assert second.issuers[B].keys[KEY["b1"].kid] is first.issuers[B].keys[KEY["b1"].kid]
    assert len(cache) == 3
    parse_bundle(doc({A: trust("a2")}), cache)
    assert len(cache) == 1, "it holds the last document's keys only"


def test_a_failed_parse_leaves_the_key_cache_as_it_was() -> None:
    cache = KeyCache()
    parse_bundle(doc({A: trust("a1")}), cache)
    broken = json.loads(doc({A: trust("a2"), B: trust("b1")}))
    broken["issuers"][B]["jwks"]["keys"][0]["d"] = "private"
    with pytest.raises(ValueError, match="private key material"):
        parse_bundle(json.dumps(broken).encode(), cache)
    assert len(cache) == 1


def test_the_key_cache_never_accepts_what_a_fresh_parse_refuses() -> None:
    cache = KeyCache()
    good = doc({A: trust("a1")})
    parse_bundle(good, cache)
    tampered = json.loads(good)
    tampered["issuers"][A]["jwks"]["keys"][0]["alg"] = "HS256"  # same key, another member
    with pytest.raises(ValueError, match="unsupported"):
        parse_bundle(json.dumps(tampered).encode(), cache)


@pytest.mark.parametrize(
    "extra",
    [{"note": "a\0b"}, {"ext": True}],
    ids=["a NUL inside a member", "a member that is not a string"],
)
def test_a_jwk_the_cache_cannot_name_exactly_is_loaded_uncached(extra: dict[str, object]) -> None:
    """The cache names a JWK by its members joined with NULs: one it could confuse with
    another is simply loaded every time."""
    document = json.loads(doc({A: trust("a1")}))
    document["issuers"][A]["jwks"]["keys"][0].update(extra)
    cache = KeyCache()
    parsed = parse_bundle(json.dumps(document).encode(), cache)
    assert kids(parsed, A) == {KEY["a1"].kid}
    assert len(cache) == 0


# --- the merge rules --------------------------------------------------------------------


def test_a_consistent_set_is_the_bundle_exactly() -> None:
    """Removed keys and expired revocations leave once the manifest names the new set."""
    shards = {0: shard({A: trust("a2")}), 1: shard({B: trust("b1")})}
    manifest = Manifest(2, (shards[0].digest, shards[1].digest))
    last = TrustBundle({A: trust("a1", "a2", jtis={"j": 1.0}), B: trust("b1"), C: trust("c1")})
    merged = merge(manifest, shards, last)
    assert merged.consistent
    assert merged.bundle == TrustBundle({A: trust("a2"), B: trust("b1")})


def test_an_issuer_moved_between_shards_is_never_missing() -> None:
    """Growth moved C from shard 0 to the new shard 1. The read has shard 0 without C
    (new) but no shard 1 yet, and the old manifest: C stays from the last good set."""
    old0 = shard({A: trust("a1"), C: trust("c1")})
    last = merge(Manifest(1, (old0.digest,)), {0: old0}, None)
    assert last.consistent
    new0, new1 = shard({A: trust("a1")}), shard({C: trust("c1")})
    half = merge(Manifest(1, (old0.digest,)), {0: new0}, last.bundle)
    assert not half.consistent
    assert kids(half.bundle, C) == {KEY["c1"].kid}
    done = merge(Manifest(2, (new0.digest, new1.digest)), {0: new0, 1: new1}, last.bundle)
    assert done.consistent
    assert kids(done.bundle, C) == {KEY["c1"].kid}


def test_shards_newer_than_the_manifest_are_merged_with_the_last_good_set() -> None:
    """Shard 1 new (B rotated to a new key alongside), shard 0 old, manifest old."""
    s0, s1 = shard({A: trust("a1")}), shard({B: trust("b1")})
    last = merge(Manifest(1, (s0.digest, s1.digest)), {0: s0, 1: s1}, None).bundle
    newer1 = shard({B: trust("b1"), C: trust("c1")})
    half = merge(Manifest(1, (s0.digest, s1.digest)), {0: s0, 1: newer1}, last)
    assert not half.consistent
    assert set(half.bundle.issuers) == {A, B, C}


def test_a_revocation_is_never_dropped_by_a_half_updated_set() -> None:
    s0 = shard({A: trust("a1", jtis={"stolen": 2e9})})
    last = merge(Manifest(1, (s0.digest,)), {0: s0}, None).bundle
    newer = shard({A: trust("a1", jtis={"other": 2e9})})
    half = merge(Manifest(2, (digest(b"not seen yet"),)), {0: newer}, last)
    assert not half.consistent
    assert set(half.bundle.issuers[A].revoked_jtis) == {"stolen", "other"}


def test_a_removed_key_of_an_issuer_read_leaves_at_once() -> None:
    """A compromised kid removed: the read has the issuer without it; not carried over."""
    s0 = shard({A: trust("a1", "a2")})
    last = merge(Manifest(1, (s0.digest,)), {0: s0}, None).bundle
    half = merge(Manifest(1, (s0.digest,)), {0: shard({A: trust("a2")})}, last)
    assert not half.consistent
    assert kids(half.bundle, A) == {KEY["a2"].kid}


def test_starting_in_the_middle_of_an_update_every_shard_present_counts() -> None:
    old0, new1 = shard({A: trust("a1")}), shard({C: trust("c1")})
    merged = merge(Manifest(1, (digest(b"older"),)), {0: old0, 1: new1}, None)
    assert not merged.consistent
    assert set(merged.bundle.issuers) == {A, C}


# --- a mounted directory ----------------------------------------------------------------


class Published:
    """What the operator publishes, written into a kubelet-style volume."""

    def __init__(self, root: Path) -> None:
        self.volume = KubeletVolume(root)
        self.files: dict[str, bytes] = {}
        self.generation = 0

    def set_shards(self, *shards: dict[str, IssuerTrust], manifest: bool = True) -> None:
        for index, issuers in enumerate(shards):
            self.files[shard_file(index)] = doc(issuers)
        if manifest:
            self.generation += 1
            digests = tuple(digest(self.files[shard_file(i)]) for i in range(len(shards)))
            self.files[MANIFEST_FILE] = render_manifest(Manifest(self.generation, digests))
        self.volume.write(self.files)


@pytest.fixture
def published(tmp_path: Path) -> Published:
    return Published(tmp_path / "bundle")


def test_a_directory_of_shards_is_read_as_one_bundle(published: Published) -> None:
    published.set_shards({A: trust("a1")}, {B: trust("b1")}, {C: trust("c1")})
    directory = BundleDirectory(published.volume.root)
    assert directory.poll(force=True)
    assert directory.consistent
    assert directory.value == TrustBundle({A: trust("a1"), B: trust("b1"), C: trust("c1")})
    assert not directory.poll(), "nothing changed, nothing read"


def test_a_half_updated_directory_keeps_every_key_until_the_set_is_consistent(
    published: Published,
) -> None:
    published.set_shards({A: trust("a1"), C: trust("c1")}, {B: trust("b1")})
    directory = BundleDirectory(published.volume.root)
    directory.poll(force=True)
    # C moves to a new shard 2; shard 0 is rewritten without it; shard 2 and the
    # manifest are not seen yet.
    published.set_shards({A: trust("a1")}, {B: trust("b1")}, manifest=False)
    assert not directory.poll()
    assert not directory.consistent
    assert directory.value is not None
    assert kids(directory.value, C) == {KEY["c1"].kid}
    published.set_shards({A: trust("a1")}, {B: trust("b1")}, {C: trust("c1")})
    directory.poll()
    assert directory.consistent
    assert directory.value == TrustBundle({A: trust("a1"), B: trust("b1"), C: trust("c1")})


def test_a_broken_shard_keeps_its_last_good_content_and_says_so(published: Published) -> None:
    published.set_shards({A: trust("a1")}, {B: trust("b1")})
    outcomes: list[LoadOutcome] = []
    directory = BundleDirectory(published.volume.root, outcomes.append)
    directory.poll(force=True)
    published.files[shard_file(1)] = b'{"version": 1, "issuers": {"x": 1}}'
    published.set_shards({A: trust("a1", "a2")}, manifest=False)
    assert directory.poll(), "shard 0's news are taken"
    assert directory.value is not None
    assert kids(directory.value, A) == {KEY["a1"].kid, KEY["a2"].kid}
    assert kids(directory.value, B) == {KEY["b1"].kid}, "shard 1's last good content"
    assert directory.last_error is not None
    assert "shard-1.json" in directory.last_error
    assert [o.ok for o in outcomes] == [True, False]


def test_a_revocation_stays_while_the_set_is_half_updated(published: Published) -> None:
    published.set_shards({A: trust("a1", jtis={"stolen": 2e9})}, {B: trust("b1")})
    directory = BundleDirectory(published.volume.root)
    directory.poll(force=True)
    published.set_shards({A: trust("a1")}, {B: trust("b1", "a2")}, manifest=False)
    directory.poll()
    assert directory.value is not None
    assert "stolen" in directory.value.issuers[A].revoked_jtis
    published.set_shards({A: trust("a1")}, {B: trust("b1", "a2")})
    directory.poll()
    assert directory.value is not None
    assert directory.value.issuers[A].revoked_jtis == {}


def test_without_a_manifest_the_single_object_bundle_is_read(published: Published) -> None:
    """A Pod whose operator was rolled back to one without shards (manifest deleted)."""
    published.volume.write({"bundle.json": doc({A: trust("a1")})})
    directory = BundleDirectory(published.volume.root)
    directory.poll(force=True)
    assert directory.value == TrustBundle({A: trust("a1")})
    published.set_shards({B: trust("b1")})
    directory.poll()
    assert directory.value == TrustBundle({B: trust("b1")}), "the manifest wins once there"


def verify(store: TrustStore, key: SigningKey, issuer: str) -> str:
    now = time.time()
    token = mint_token(
        key, issuer=issuer, subject="s", audience="census.shop", now=now, lifetime=60
    )
    return store.verifier.verify(token, now).issuer


def test_the_sidecar_waits_unready_for_an_empty_directory_and_refuses_a_missing_one(
    published: Published, tmp_path: Path
) -> None:
    settings = VerifierSettings(audience="census.shop")
    with pytest.raises(ValueError, match="no trust bundle directory"):
        TrustStore([], [], settings, directories=[tmp_path / "typo"]).load_initial()
    published.volume.write({})
    store = TrustStore([], [], settings, directories=[published.volume.root])
    store.load_initial()
    assert store.problems(time.time(), 900) == [
        f"trust.bundleDirs: no good version of {published.volume.root} yet"
    ]
    with pytest.raises(UnknownIssuer):
        verify(store, KEY["a1"], A)
    published.set_shards({A: trust("a1")}, {B: trust("b1")})
    assert store.poll()
    assert store.problems(time.time(), 900) == []
    assert verify(store, KEY["b1"], B) == B


def test_tokens_verify_against_keys_of_any_shard_and_a_removed_key_fails(
    published: Published,
) -> None:
    published.set_shards({A: trust("a1")}, {B: trust("b1")}, {C: trust("c1", "c2")})
    store = TrustStore(
        [], [], VerifierSettings(audience="census.shop"), directories=[published.volume.root]
    )
    store.load_initial()
    assert [verify(store, KEY[k], i) for k, i in (("a1", A), ("b1", B), ("c2", C))] == [A, B, C]
    published.set_shards({A: trust("a1")}, {B: trust("b1")}, {C: trust("c1")})
    assert store.poll()
    with pytest.raises(UnknownKey):
        verify(store, KEY["c2"], C)


def test_a_broken_shard_shows_in_the_reload_metrics(published: Published) -> None:
    published.set_shards({A: trust("a1")})
    metrics = SidecarMetrics()
    directory = BundleDirectory(published.volume.root, metrics.loader("trust"))
    directory.poll(force=True)
    published.files[shard_file(0)] = b"{"
    published.set_shards(manifest=False)
    directory.poll()
    text = generate_latest(metrics.registry).decode()
    assert 'jwtmesh_reloads_total{result="error",source="bundle"} 1.0' in text
    assert 'jwtmesh_reload_failing{source="bundle"} 1.0' in text
