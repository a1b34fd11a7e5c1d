"""The promises of the sharded bundle, over generated publish histories read the way a
kubelet shows them: each object (the manifest, each shard) lags on its own, up to LAG
generations, and never goes back. The operator pre-publishes keys, removes compromised
ones, revokes jtis, deletes identities and grows the shard count (moving issuers into the
new shards: `jwtmesh_operator.shard_plan`). After every read of a `BundleDirectory`:

- a key that signs is in force: one in its issuer in every generation of the last
  2 * LAG + 1 (pre-publication covers the kubelet's lag twice: an issuer moving to a new
  shard can be out of sight for one lag after the last copy read, itself up to one lag old);
- a removed key leaves at once (a shard the manifest names shows the issuer without it)
  and a half-updated read never brings back a key that was not in force, unless every
  copy of its issuer in the read has it;
- a half-updated read drops no revocation in force, and every revocation a shard the
  manifest names shows is in force.

The fast suite runs 150 derandomised histories; JWTMESH_SHARD_EXAMPLES=3000 searches longer.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jwtmesh.shards import MANIFEST_FILE, Manifest, digest, render_manifest, shard_file
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.trust import IssuerTrust, MeshIdentity, TrustBundle, render_bundle
from jwtmesh_operator.shard_plan import issuer_hash, jump_hash
from jwtmesh_sidecar.bundle_dir import BundleDirectory
from jwtmesh_testing.kubelet_volume import KubeletVolume

LAG = 2  # generations an object the kubelet shows may be behind, at any moment
MAX_COUNT = 4
# Their shards at counts 2, 3, 4: s1 stays in 0; s4 moves 1 -> 2; s0 1 -> 3; s11 0 -> 2 -> 3.
S0, S1, S4, S11 = (f"https://mesh.test/ns/shop/s{i}" for i in (0, 1, 4, 11))
NAMES = (S0, S1, S4, S11)
KEYS = [generate_signing_key() for _ in range(len(NAMES) + 14)]  # one per step at most
EXAMPLES = os.environ.get("JWTMESH_SHARD_EXAMPLES")
HISTORIES = settings(
    max_examples=int(EXAMPLES or 150),
    derandomize=EXAMPLES is None,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Generation:
    """What the operator publishes: each live issuer's key indexes and jtis, the count."""

    issuers: dict[str, tuple[tuple[int, ...], frozenset[str]]]
    count: int

    def shard(self, index: int) -> dict[str, IssuerTrust] | None:
        if index >= self.count:
            return None  # not created yet
        return {
            name: trust(*entry)
            for name, entry in self.issuers.items()
            if jump_hash(issuer_hash(name), self.count) == index
        }


def trust(keys: tuple[int, ...], jtis: frozenset[str]) -> IssuerTrust:
    return IssuerTrust(
        {KEYS[k].kid: KEYS[k].public for k in keys},
        revoked_jtis=dict.fromkeys(jtis, 2e9),
        mesh=MeshIdentity("s.shop", "shop"),
    )


def step(gen: Generation, op: str, who: str, fresh: int) -> Generation:
    """The next generation: `op` applied to issuer `who` (`fresh`: an unused key)."""
    issuers = dict(gen.issuers)
    if op == "grow":
        return replace(gen, count=min(gen.count + 1, MAX_COUNT))
    if who not in issuers:
        return gen
    keys, jtis = issuers[who]
    if op == "prepublish":
        issuers[who] = (*keys, fresh), jtis
    elif op == "remove" and len(keys) > 1:
        issuers[who] = keys[1:], jtis
    elif op == "revoke":
        issuers[who] = keys, jtis | {f"jti-{fresh}"}
    elif op == "delete":
        del issuers[who]
    return replace(gen, issuers=issuers)


OPS = st.lists(
    st.tuples(
        st.sampled_from(["prepublish", "remove", "revoke", "delete", "grow", "nothing"]),
        st.sampled_from(NAMES),
        # how far behind the kubelet shows the manifest and each shard after this publish
        st.lists(st.integers(0, LAG - 1), min_size=MAX_COUNT + 1, max_size=MAX_COUNT + 1),
    ),
    min_size=1,
    max_size=len(KEYS) - len(NAMES),
)


class Kubelet:
    """The volume as the kubelet shows it: each object at its own generation."""

    def __init__(self, root: Path, history: list[Generation]) -> None:
        self.volume = KubeletVolume(root)
        self.history = history
        self.shown = [0] * (MAX_COUNT + 1)  # the manifest's generation, then each shard's

    def show(self, now: int, lags: list[int]) -> None:
        self.shown = [max(seen, now - lag) for seen, lag in zip(self.shown, lags, strict=True)]
        files = {}
        for index in range(MAX_COUNT):
            issuers = self.history[self.shown[index + 1]].shard(index)
            if issuers is not None:
                files[shard_file(index)] = render_bundle(TrustBundle(issuers))
        named = self.history[self.shown[0]]
        digests = (render_bundle(TrustBundle(named.shard(i) or {})) for i in range(named.count))
        files[MANIFEST_FILE] = render_manifest(Manifest(self.shown[0], tuple(map(digest, digests))))
        self.volume.write(files)

    def named_copies(self) -> list[tuple[int, str, IssuerTrust]]:
        """(generation, issuer, copy) of every issuer in a shard the shown manifest names."""
        count = self.history[self.shown[0]].count
        found = []
        for index in range(count):
            shown = self.history[self.shown[index + 1]]
            for name, copy in (shown.shard(index) or {}).items():
                found.append((self.shown[index + 1], name, copy))
        return found

    def copies(self, name: str) -> list[IssuerTrust]:
        """Every copy of issuer `name` in any shard shown."""
        shards = (self.history[g].shard(i) for i, g in enumerate(self.shown[1:]))
        return [shard[name] for shard in shards if shard is not None and name in shard]


MANIFEST_BEHIND = [1, 0, 0, 0, 0]


@HISTORIES
@given(OPS)
# A revocation in force, then its issuer deleted or moved (growth), the manifest behind.
@example([("revoke", S1, MANIFEST_BEHIND), ("delete", S1, MANIFEST_BEHIND)])
@example([("revoke", S4, MANIFEST_BEHIND), ("grow", S4, MANIFEST_BEHIND)])
# A key removed, then its issuer moved: the last consistent set still has the key.
@example(
    [("prepublish", S4, [0] * 5), ("remove", S4, MANIFEST_BEHIND), ("grow", S4, MANIFEST_BEHIND)]
)
def test_a_sidecar_keeps_the_sharded_bundles_promises(
    ops: list[tuple[str, str, list[int]]],
) -> None:
    first = Generation({name: ((i,), frozenset()) for i, name in enumerate(NAMES)}, 2)
    history = [first]
    removed_at: dict[str, int] = {}  # kid -> the generation that removed it
    with tempfile.TemporaryDirectory() as tmp:
        kubelet = Kubelet(Path(tmp), history)
        kubelet.show(0, [0] * (MAX_COUNT + 1))
        directory = BundleDirectory(kubelet.volume.root)
        directory.poll(force=True)
        assert directory.consistent
        for now, (op, who, lags) in enumerate(ops, start=1):
            before = directory.value
            assert before is not None
            history.append(step(history[-1], op, who, len(NAMES) + now - 1))
            for name, (keys, _) in history[-2].issuers.items():
                kept = history[-1].issuers.get(name, ((), frozenset()))[0]
                if name in history[-1].issuers:
                    removed_at.update((KEYS[k].kid, now) for k in keys if k not in kept)
            kubelet.show(now, lags)
            directory.poll()
            after = directory.value
            assert after is not None
            _keys_that_sign_are_in_force(history, now, after)
            _removed_keys_stay_out(kubelet, removed_at, before, after, directory.consistent)
            _revocations_stay(kubelet, before, after, directory.consistent)


def _keys_that_sign_are_in_force(history: list[Generation], now: int, bundle: TrustBundle) -> None:
    window = history[max(0, now - 2 * LAG) : now + 1]
    for name in NAMES:
        if all(name in gen.issuers for gen in window):
            signing = set.intersection(*(set(gen.issuers[name][0]) for gen in window))
            in_force = set(bundle.issuers[name].keys)
            assert {KEYS[k].kid for k in signing} <= in_force, (name, now)


def _removed_keys_stay_out(
    kubelet: Kubelet,
    removed_at: dict[str, int],
    before: TrustBundle,
    after: TrustBundle,
    consistent: bool,
) -> None:
    for generation, name, copy in kubelet.named_copies():
        gone = {kid for kid, at in removed_at.items() if at <= generation} - set(copy.keys)
        assert not gone & set(after.issuers[name].keys), name
    if consistent:
        return
    for name, trust_now in after.issuers.items():
        had = set(before.issuers[name].keys) if name in before.issuers else set()
        for kid in set(trust_now.keys) - had:
            assert all(kid in copy.keys for copy in kubelet.copies(name)), (name, kid)


def _revocations_stay(
    kubelet: Kubelet, before: TrustBundle, after: TrustBundle, consistent: bool
) -> None:
    for _, name, copy in kubelet.named_copies():
        assert set(copy.revoked_jtis) <= set(after.issuers[name].revoked_jtis), name
    if consistent:
        return
    for name, trust_before in before.issuers.items():
        assert name in after.issuers, name
        assert set(trust_before.revoked_jtis) <= set(after.issuers[name].revoked_jtis), name
