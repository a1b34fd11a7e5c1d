"""The promises of a half-updated sharded bundle (`jwtmesh_sidecar.shard_merge`,
docs/formats.md): a revocation once in force is not dropped, a removed key does not come
back, two copies of one moving issuer give only what both allow, and a missing manifest
never puts the frozen `bundle.json` back in force."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jwtmesh.shards import MANIFEST_FILE, Manifest, digest, render_manifest, shard_file
from jwtmesh.tokens.errors import Revoked
from jwtmesh.tokens.keys import SigningKey, generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, MeshIdentity, TrustBundle, render_bundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_sidecar.bundle_dir import BundleDirectory
from jwtmesh_sidecar.shard_merge import Shard, merge
from jwtmesh_testing.kubelet_volume import KubeletVolume

A, C, D = (f"https://mesh.test/ns/shop/{name}" for name in ("a", "c", "d"))
KEY = {name: generate_signing_key() for name in ("a1", "c1", "c2", "d1")}
AUDIENCE = "census.shop"
SETTINGS = VerifierSettings(audience=AUDIENCE)
# A manifest whose shards are not read yet: the read is half-updated.
NEWER = Manifest(2, tuple(digest(b"not read yet %d" % i) for i in range(3)))


def trust(
    *names: str, jtis: dict[str, float] | None = None, claims: dict[str, object] | None = None
) -> IssuerTrust:
    subject = names[0][0] + ".shop"  # the key's issuer: "c1" -> "c.shop"
    return IssuerTrust(
        {KEY[n].kid: KEY[n].public for n in names},
        revoked_jtis=jtis or {},
        mesh=MeshIdentity(subject, "shop", claims or {}),
    )


def doc(issuers: dict[str, IssuerTrust]) -> bytes:
    return render_bundle(TrustBundle(issuers))


def shard(issuers: dict[str, IssuerTrust]) -> Shard:
    return Shard(digest(doc(issuers)), TrustBundle(issuers))


def kids(bundle: TrustBundle, issuer: str) -> set[str]:
    return set(bundle.issuers[issuer].keys)


def token(key: SigningKey, issuer: str, now: float) -> str:
    return mint_token(
        key, issuer=issuer, subject="c.shop", audience=AUDIENCE, now=now, lifetime=600
    )


class Volume:
    """The files the operator published, as one kubelet-style volume, and a sidecar's read."""

    def __init__(self, root: Path, *shards: dict[str, IssuerTrust]) -> None:
        """Starts from a consistent set of these shards."""
        self.volume = KubeletVolume(root)
        self.files: dict[str, bytes] = {}
        self.directory = BundleDirectory(root)
        self.write(*shards, manifest=True)
        assert self.directory.consistent

    def write(self, *shards: dict[str, IssuerTrust] | None, manifest: bool = False) -> None:
        """Shard i as given (None: as it was), the manifest naming them if asked; read."""
        for index, issuers in enumerate(shards):
            if issuers is not None:
                self.files[shard_file(index)] = doc(issuers)
        if manifest:
            digests = tuple(digest(self.files[shard_file(i)]) for i in range(len(shards)))
            self.files[MANIFEST_FILE] = render_manifest(Manifest(1, digests))
        self.volume.write(self.files)
        self.directory.poll()

    @property
    def bundle(self) -> TrustBundle:
        assert self.directory.value is not None
        return self.directory.value


# --- a revocation in force stays ---------------------------------------------------------


@pytest.mark.parametrize("how", ["moves to a new shard", "is deleted"])
def test_a_revocation_a_half_updated_read_put_in_force_stays_when_its_issuer_leaves_the_read(
    tmp_path: Path, how: str
) -> None:
    """The operator's last consistent set predates the revocation: carrying the issuer over
    from it would make the stolen token verify again."""
    now = time.time()
    stolen = token(KEY["c1"], C, now)
    jti = Verifier(TrustBundle({C: trust("c1")}), SETTINGS).verify(stolen, now).jti
    assert jti is not None
    bundle = Volume(tmp_path, {A: trust("a1"), C: trust("c1")}, {})
    revoked = trust("c1", jtis={jti: now + 600})
    bundle.write({A: trust("a1"), C: revoked})  # shard 0 before the manifest
    assert not bundle.directory.consistent
    with pytest.raises(Revoked):
        Verifier(bundle.bundle, SETTINGS).verify(stolen, now)
    if how == "moves to a new shard":  # growth: shard 2 written first, then shard 0
        bundle.write({A: trust("a1")}, None, {C: revoked})
    else:
        bundle.write({A: trust("a1")})
    assert not bundle.directory.consistent
    with pytest.raises(Revoked):
        Verifier(bundle.bundle, SETTINGS).verify(stolen, now)


# --- a removed key stays out -------------------------------------------------------------


def test_a_removed_key_stays_out_when_its_issuer_then_moves_to_a_new_shard(
    tmp_path: Path,
) -> None:
    """c1 compromised and removed (C re-keyed to c2): it left at once, and the last
    consistent set, which still has it, must not bring it back when C moves."""
    bundle = Volume(tmp_path, {A: trust("a1"), C: trust("c1")}, {})
    bundle.write({A: trust("a1"), C: trust("c2")})
    assert kids(bundle.bundle, C) == {KEY["c2"].kid}
    bundle.write({A: trust("a1")}, None, {C: trust("c2")})
    assert not bundle.directory.consistent
    assert kids(bundle.bundle, C) == {KEY["c2"].kid}


def test_news_in_a_shard_past_the_manifests_count_count_in_a_half_updated_read() -> None:
    """Growth writes the new shard first: its revocation counts before the manifest names it."""
    old0, s1 = shard({A: trust("a1"), C: trust("c1")}), shard({})
    manifest = Manifest(1, (old0.digest, s1.digest))
    in_force = merge(manifest, {0: old0, 1: s1}, None).bundle
    new0, new2 = shard({A: trust("a1")}), shard({C: trust("c1", jtis={"stolen": 2e9})})
    half = merge(manifest, {0: new0, 1: s1, 2: new2}, in_force)
    assert not half.consistent
    assert "stolen" in half.bundle.issuers[C].revoked_jtis


# --- two copies of one issuer ------------------------------------------------------------


def test_a_stale_copy_of_a_moving_issuer_does_not_keep_a_key_the_newer_copy_removed() -> None:
    """The new manifest and shard 2 (C moved there, c1 removed) are read; shard 0 is still
    the old one, with C and c1."""
    old0, s1 = shard({A: trust("a1"), C: trust("c1")}), shard({})
    in_force = merge(Manifest(1, (old0.digest, s1.digest)), {0: old0, 1: s1}, None).bundle
    new0, new2 = shard({A: trust("a1")}), shard({C: trust("c2")})
    manifest = Manifest(2, (new0.digest, s1.digest, new2.digest))
    half = merge(manifest, {0: old0, 1: s1, 2: new2}, in_force)
    assert not half.consistent
    assert KEY["c1"].kid not in kids(half.bundle, C)


def test_a_key_that_signs_is_in_both_copies_of_a_moving_issuer_and_stays() -> None:
    """c1 signs; c2 is pre-published with the move. The copies differ only by c2, which
    does not sign yet: c1 stays in force, and revocations of either copy hold."""
    old0 = shard({A: trust("a1"), C: trust("c1", jtis={"old": 2e9})})
    new2 = shard({C: trust("c1", "c2", jtis={"new": 2e9})})
    half = merge(NEWER, {0: old0, 2: new2}, None)
    assert kids(half.bundle, C) == {KEY["c1"].kid}
    assert set(half.bundle.issuers[C].revoked_jtis) == {"old", "new"}


def test_a_stale_copy_of_a_moving_issuer_does_not_widen_its_grants() -> None:
    """A grant withdrawn with the move: the stale copy (shard 0, read first) must not win."""
    old0 = shard({C: trust("c1", claims={"role": "admin", "tier": ["gold"]})})
    new2 = shard({C: trust("c1", claims={"tier": ["gold"]})})
    half = merge(NEWER, {0: old0, 2: new2}, None)
    mesh = half.bundle.issuers[C].mesh
    assert mesh is not None
    assert dict(mesh.granted_claims) == {"tier": ["gold"]}


def test_grants_that_differ_only_in_json_type_are_not_common() -> None:
    """`true` is not `1` to the claim checks, so neither is granted while the copies differ."""
    old0 = shard({C: trust("c1", claims={"admin": 1})})
    new2 = shard({C: trust("c1", claims={"admin": True})})
    mesh = merge(NEWER, {0: old0, 2: new2}, None).bundle.issuers[C].mesh
    assert mesh is not None
    assert dict(mesh.granted_claims) == {}


def test_copies_bound_to_different_subjects_keep_no_key() -> None:
    edited = IssuerTrust({KEY["c1"].kid: KEY["c1"].public}, mesh=MeshIdentity("root.shop", "shop"))
    old0, new2 = shard({C: trust("c1")}), shard({C: edited})
    half = merge(NEWER, {0: old0, 2: new2}, None)
    assert kids(half.bundle, C) == set()


# --- shards past the manifest's count ------------------------------------------------------


def test_a_leftover_shard_past_the_count_does_not_bring_back_a_deleted_issuer(
    tmp_path: Path,
) -> None:
    """A shard-2.json from before the count shrank (all manifests deleted, the operator
    restarted) is stale: once a consistent set left it out, a half-updated read does too."""
    bundle = Volume(tmp_path, {A: trust("a1")}, {C: trust("c1")})
    bundle.files[shard_file(2)] = doc({D: trust("d1")})
    bundle.write(None, None, manifest=True)
    assert bundle.directory.consistent
    assert D not in bundle.bundle.issuers
    bundle.write({A: trust("a1"), C: trust("c1", "c2")})
    assert not bundle.directory.consistent
    assert D not in bundle.bundle.issuers
    bundle.files[shard_file(2)] = doc({D: trust("d1"), C: trust("c1", "c2")})
    bundle.write()
    assert D in bundle.bundle.issuers, "a shard that changed since is written by growth"


# --- a missing manifest --------------------------------------------------------------------


def test_a_missing_manifest_keeps_the_sharded_bundle_not_the_frozen_bundle_json(
    tmp_path: Path,
) -> None:
    """bundle.json stopped being updated when the bundle outgrew one ConfigMap, before c1
    was removed: once a manifest was read, a read without one keeps the sharded state."""
    volume = KubeletVolume(tmp_path)
    s0 = doc({C: trust("c2")})
    files = {
        "bundle.json": doc({C: trust("c1")}),
        shard_file(0): s0,
        MANIFEST_FILE: render_manifest(Manifest(7, (digest(s0),))),
    }
    volume.write(files)
    directory = BundleDirectory(volume.root)
    directory.poll(force=True)
    assert directory.value == TrustBundle({C: trust("c2")})
    del files[MANIFEST_FILE]
    volume.write(files)
    directory.poll()
    assert directory.value == TrustBundle({C: trust("c2")})
    assert directory.last_error is not None
    assert MANIFEST_FILE in directory.last_error
    files[shard_file(0)] = doc({C: trust("c2", jtis={"stolen": 2e9})})
    volume.write(files)
    directory.poll()
    assert directory.value is not None
    assert "stolen" in directory.value.issuers[C].revoked_jtis, "shards are still read"
