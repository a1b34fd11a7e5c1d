"""A bundle that outgrows its capacity, against a real kube-apiserver: rotations wait for
the bundle instead of signing with keys no verifier has.

The operator here watches one namespace and has a shard limit between what five and six
of the identity's RSA-4096 keys take (~800 bytes each). Rotating every 10 s and keeping
a retired key 51 s, its sixth key (made at 44 s, while the first is retained until 61 s)
puts the bundle over its capacity, so that publish is refused. Before the fix, that key
began signing 6 s later all the same, and every token it signed failed until the first
key left. Now it is held (RotationHeld) and the key in the bundle signs on; once the
first key leaves and the bundle is written again, it signs prePublish after that
publish (RotationResumed). The 51 s leave room: on a loaded machine rotations are put
later (RotationDelayed), and with 41 s the first key had left before a sixth was made."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from jwtmesh.identity import parse_identity, signer_at
from jwtmesh.shards import SHARD_LIMIT
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.trust import MeshIdentity
from jwtmesh_operator.bundles import build_bundle
from jwtmesh_operator.rendering import BundleRenderer
from jwtmesh_operator.spec import DEFAULT_TRUST_DOMAIN
from jwtmesh_operator.tenancy import default_audience, default_issuer
from jwtmesh_testing.kubeapply import create_object, service_identity, wait_for
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess

pytestmark = pytest.mark.k8s
FIVE_KEYS_FIT = {
    "algorithm": "RS256",
    "keySize": 4096,
    "maxTokenLifetime": "1s",
    "rotation": {"period": "10s", "prePublish": "6s", "retain": "51s"},
}


@pytest.fixture(scope="module")
def small_bundle(
    local_cluster: LocalCluster,
    cluster_objects: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The namespace of an operator with a tiny bundle capacity that watches only it."""
    ns = cluster_objects.namespace("overlimit")
    five, six = (bundle_bytes(ns, count) for count in (5, 6))
    process = OperatorProcess.for_cluster(
        local_cluster,
        tmp_path_factory.mktemp("overlimit"),
        extra=[f"--bundle-shard-bytes={(five + six) // 2}", f"--namespace={ns}"],
    )
    yield ns
    process.stop()


def bundle_bytes(ns: str, count: int) -> int:
    """What the bundle of herald in `ns` with `count` RSA-4096 keys takes (rendering.py)."""
    issuer = default_issuer(DEFAULT_TRUST_DOMAIN, ns, "herald")
    keys = [generate_signing_key("RS256", 4096).public for _ in range(count)]
    mesh = MeshIdentity(subject=default_audience(ns, "herald"), namespace=ns, granted_claims={})
    bundle = build_bundle({issuer: {key.kid: key for key in keys}}, [], time.time(), {issuer: mesh})
    rendered = BundleRenderer(shard_limit=SHARD_LIMIT).render(bundle, 0)
    return rendered.total_bytes


def signing(cluster_objects: Any, ns: str, now: float) -> tuple[str, float]:
    """The kid that signs at `now` by the Secret's schedule, and since when it does."""
    data = cluster_objects.secret_data(ns, "herald-jwtmesh-key")
    key = signer_at(parse_identity(data["signing-keys.json"]).keys, now)
    assert key is not None
    return key.key.kid, key.activates_at


def over_limit(cluster_objects: Any, ns: str) -> bool:
    conditions = cluster_objects.identity(ns, "herald").get("status", {}).get("conditions", [])
    return any(c["type"] == "BundleSizeOK" and c["reason"] == "BundleOverLimit" for c in conditions)


def test_a_rotation_waits_for_a_bundle_over_its_capacity_instead_of_breaking_tokens(
    small_bundle: str, cluster_objects: Any
) -> None:
    ns = small_bundle
    create_object(
        cluster_objects.api, ns, "serviceidentities", service_identity("herald", FIVE_KEYS_FIT)
    )
    issuer = cluster_objects.ready_identity(ns, "herald")["status"]["issuer"]
    wait_for(lambda: cluster_objects.bundle_kids(ns, issuer), 15, "the first bundle")
    already_there = cluster_objects.bundle_kids(ns, issuer)
    first_seen: dict[str, float] = {}  # kid → when this test first saw it in the bundle
    signers: list[str] = []
    refused_seen = False
    deadline = time.time() + 120
    while time.time() < deadline:
        now = time.time()
        kids = cluster_objects.bundle_kids(ns, issuer)
        for kid in kids:
            first_seen.setdefault(kid, now)
        signer, since = signing(cluster_objects, ns, now)
        assert signer in kids, f"{signer} signs at {now:.1f} and is not in the bundle {kids}"
        if not signers or signers[-1] != signer:
            signers.append(signer)
            if signer not in already_there:
                # Written by the time this test first saw it: prePublish (6 s) less the
                # slack (2 s) before it signs, less how late this loop may have looked.
                ahead = since - first_seen[signer]
                assert ahead >= 3.0, f"{signer} signs {ahead:.1f} s after it was published"
        refused_seen = refused_seen or over_limit(cluster_objects, ns)
        if refused_seen and len(signers) >= 6:
            break
        time.sleep(0.25)
    assert refused_seen, f"the sixth key put the bundle over its capacity ({len(signers)} signed)"
    reasons = cluster_objects.event_reasons(ns, "herald")
    assert {"RotationHeld", "RotationResumed"} <= reasons, reasons
    assert len(signers) >= 6, f"the held key signed once the bundle fit again: {signers}"
