"""The operator against a real kube-apiserver (+ etcd + kube-controller-manager)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from jwtmesh.identity import active_key, parse_identity
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh_testing.kubeapply import (
    create_object,
    delete_object,
    patch_object,
    service_identity,
    wait_for,
)
from jwtmesh_testing.kubelet_volume import KubeletVolume
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess

pytestmark = pytest.mark.k8s
FAST = {
    # prePublish leaves a publish 3 s to reach the bundle before the key signs (the test
    # checks 1 s ahead): on a loaded CI machine a publish to every namespace took over 1 s.
    "rotation": {"period": "8s", "prePublish": "4s", "retain": "31s"},
    "maxTokenLifetime": "1s",
}


@pytest.fixture(scope="module")
def operator(
    local_cluster: LocalCluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess.for_cluster(local_cluster, tmp_path_factory.mktemp("operator"))
    yield process
    process.stop()


def signing_kid(data: dict[str, bytes], now: float) -> str | None:
    key = active_key(parse_identity(data["signing-keys.json"]), now)
    return key.kid if key else None


def test_an_identity_gets_its_secret_bundle_and_ready_status(
    operator: OperatorProcess, cluster_objects: Any, local_cluster: LocalCluster
) -> None:
    ns = cluster_objects.namespace("ready")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
    body = cluster_objects.ready_identity(ns, "census", timeout=20)
    status = body["status"]
    assert status["issuer"] == f"https://jwtmesh.cluster.local/ns/{ns}/census"
    assert status["audience"] == f"census.{ns}"
    secret = cluster_objects.core.read_namespaced_secret("census-jwtmesh-key", ns)
    assert secret.type == "jwtmesh.io/signing-key"
    assert secret.metadata.owner_references[0].name == "census"
    data = cluster_objects.secret_data(ns, "census-jwtmesh-key")
    assert signing_kid(data, time.time()) == status["activeKid"]
    wait_for(
        lambda: status["activeKid"] in cluster_objects.bundle_kids(ns, status["issuer"]),
        10,
        "the key in the bundle",
    )
    assert "PRIVATE" not in json.dumps(status)
    assert '"d"' not in json.dumps(status)
    assert "PRIVATE" not in json.dumps(cluster_objects.bundle(ns))
    assert "KeyCreated" in wait_for(
        lambda: cluster_objects.event_reasons(ns, "census"), 10, "events"
    )
    assert cluster_objects.core.read_namespaced_config_map("census-jwtmesh-policy", ns).data[
        "policy.yaml"
    ]
    table = subprocess.run(
        [
            str(local_cluster.binaries.kubectl),
            "--kubeconfig",
            str(local_cluster.kubeconfig),
            "get",
            "serviceidentities",
            "-n",
            ns,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    header = table.splitlines()[0].split()
    assert header[:4] == ["NAME", "ISSUER", "ALGORITHM", "ACTIVE"]
    assert "READY" in header
    assert "ROTATION" in header
    assert status["activeKid"] in table
    assert "True" in table


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"algorithm": "ES256", "keySize": 4096}, "keySize applies only to the RSA algorithms"),
        (
            {"maxTokenLifetime": "1h", "rotation": {"retain": "30m"}},
            "rotation.retain must be at least maxTokenLifetime + 30s",
        ),
        (
            {"rotation": {"period": "1h", "prePublish": "2h"}},
            "rotation.prePublish must be shorter than rotation.period",
        ),
        ({"rotation": {"period": "soon"}}, "spec.rotation.period"),
        ({"algorithm": "HS256"}, 'Unsupported value: "HS256"'),
        ({"algorithm": "RS256", "keySize": 1024}, "spec.keySize"),
        ({"algorithm": "RS256", "keySize": 8192}, "should be less than or equal to 4096"),
        ({"issuer": "http://plain.example/x"}, "spec.issuer"),
        (
            {"policy": {"rules": [{"paths": [{"exact": "/a", "prefix": "/b"}]}]}},
            "spec.policy.rules[0].paths[0]: Too many",
        ),
    ],
    ids=[
        "keySize with ES256",
        "retain too short",
        "prePublish too long",
        "not a duration",
        "HS256",
        "small RSA",
        "RSA too slow to make",
        "http issuer",
        "two path kinds",
    ],
)
def test_the_api_server_refuses_invalid_identities_with_a_readable_message(
    cluster_objects: Any, spec: dict[str, Any], message: str
) -> None:
    ns = cluster_objects.namespace("invalid")
    with pytest.raises(ApiException) as refused:
        create_object(cluster_objects.api, ns, "serviceidentities", service_identity("bad", spec))
    assert refused.value.status == 422
    assert message in json.loads(refused.value.body)["message"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"identity": "a", "issuer": "b", "jti": "x", "expiresAt": "2030-01-01T00:00:00Z"},
            "exactly one of identity",
        ),
        ({"identity": "a", "jti": "x"}, "needs expiresAt"),
        (
            {"identity": "a", "jti": "x", "kid": "k", "expiresAt": "2030-01-01T00:00:00Z"},
            "exactly one of jti, issuedBefore or kid",
        ),
    ],
    ids=["identity and issuer", "jti without expiresAt", "jti and kid"],
)
def test_the_api_server_refuses_invalid_revocations(
    cluster_objects: Any, spec: dict[str, Any], message: str
) -> None:
    ns = cluster_objects.namespace("badrev")
    body = {
        "apiVersion": "jwtmesh.io/v1alpha1",
        "kind": "TokenRevocation",
        "metadata": {"name": "r"},
        "spec": spec,
    }
    with pytest.raises(ApiException) as refused:
        create_object(cluster_objects.api, ns, "tokenrevocations", body)
    assert message in json.loads(refused.value.body)["message"]


@pytest.mark.timing  # checks the next key is published 1 s before it signs
def test_a_fast_schedule_cycles_through_every_key_state(
    operator: OperatorProcess, cluster_objects: Any
) -> None:
    """At every moment the bundle holds the key signers use, and the next one before it signs."""
    ns = cluster_objects.namespace("rotate")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald", FAST))
    status = cluster_objects.ready_identity(ns, "herald")["status"]
    issuer = status["issuer"]
    wait_for(lambda: cluster_objects.bundle_kids(ns, issuer), 10, "the first bundle")
    states_seen: set[str] = set()
    removed: set[str] = set()
    ever_published: set[str] = set()
    deadline = time.time() + 48

    def seen_every_transition() -> bool:  # the first key's removal (~40 s) comes last
        return {"Pending", "Active", "Retired"} <= states_seen and bool(removed)

    while time.time() < deadline and not seen_every_transition():
        now = time.time()
        data = cluster_objects.secret_data(ns, "herald-jwtmesh-key")
        kids = cluster_objects.bundle_kids(ns, issuer)
        signer = signing_kid(data, now)
        assert signer in kids, f"the signing key {signer} is missing from the bundle at {now}"
        identity = parse_identity(data["signing-keys.json"])
        for scheduled in identity.keys:
            if 0 < scheduled.activates_at - now < 1.0:
                assert scheduled.key.kid in kids, "the next key is published before it signs"
        removed |= ever_published - kids
        ever_published |= kids
        for key in cluster_objects.identity(ns, "herald")["status"]["keys"]:
            states_seen.add(key["state"])
        time.sleep(0.3)
    assert {"Pending", "Active", "Retired"} <= states_seen
    assert removed, "a retired key left the bundle after its retention"


def test_revocations_and_a_compromised_kid_reach_the_bundle(
    operator: OperatorProcess, cluster_objects: Any
) -> None:
    ns = cluster_objects.namespace("revoke")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald"))
    status = cluster_objects.ready_identity(ns, "herald")["status"]
    issuer, compromised = status["issuer"], status["activeKid"]

    def revoke(name: str, **spec: Any) -> None:
        body = {
            "apiVersion": "jwtmesh.io/v1alpha1",
            "kind": "TokenRevocation",
            "metadata": {"name": name},
            "spec": {"identity": "herald", **spec},
        }
        create_object(cluster_objects.api, ns, "tokenrevocations", body)

    revoke("one-token", jti="stolen-jti", expiresAt="2099-01-01T00:00:00Z")
    revoke("before-incident", issuedBefore="2026-01-01T00:00:00Z")

    def revocations() -> dict[str, Any]:
        entry = (cluster_objects.bundle(ns) or {"issuers": {}})["issuers"].get(issuer, {})
        result: dict[str, Any] = entry.get("revocations", {})
        return result

    found = wait_for(
        lambda: (r := revocations()) and "jtis" in r and "issuedBefore" in r and r,
        15,
        "revocations in the bundle",
    )
    assert "stolen-jti" in found["jtis"]
    other = cluster_objects.namespace("elsewhere", {"jwtmesh.io/trust-bundle": "true"})
    wait_for(
        lambda: issuer in (cluster_objects.bundle(other) or {"issuers": {}})["issuers"],
        15,
        "the bundle mirrored into a labeled namespace",
    )

    revoke("compromised", kid=compromised)
    wait_for(
        lambda: (
            compromised not in cluster_objects.bundle_kids(ns, issuer)
            and compromised not in cluster_objects.bundle_kids(other, issuer)
        ),
        15,
        "the compromised kid gone from every bundle",
    )
    rekeyed = wait_for(
        lambda: (
            (k := cluster_objects.identity(ns, "herald")["status"].get("activeKid")) != compromised
            and k
        ),
        15,
        "a new signing key",
    )
    assert rekeyed in cluster_objects.bundle_kids(ns, issuer) or wait_for(
        lambda: rekeyed in cluster_objects.bundle_kids(ns, issuer), 10, "new key published"
    )
    data = cluster_objects.secret_data(ns, "herald-jwtmesh-key")
    assert compromised not in data["signing-keys.json"].decode()


def test_deleting_an_identity_removes_its_keys_and_its_secret(
    operator: OperatorProcess, cluster_objects: Any
) -> None:
    ns = cluster_objects.namespace("delete")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald"))
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
    herald = cluster_objects.ready_identity(ns, "herald")["status"]["issuer"]
    census = cluster_objects.ready_identity(ns, "census")["status"]["issuer"]
    wait_for(lambda: cluster_objects.bundle_kids(ns, herald), 10, "herald in the bundle")
    delete_object(cluster_objects.api, ns, "serviceidentities", "herald")
    wait_for(
        lambda: herald not in (cluster_objects.bundle(ns) or {})["issuers"],
        30,
        "herald's keys gone from the bundle",
    )
    # The controller-manager's garbage collector deletes it (ownerReference), once its
    # discovery, refreshed every 30 s, has seen the CRD: up to ~50 s on a busy machine.
    wait_for(
        lambda: cluster_objects.secret_data(ns, "herald-jwtmesh-key") is None,
        90,
        "the Secret garbage-collected",
    )
    assert cluster_objects.bundle_kids(ns, census), "the other identity is untouched"


def test_a_tampered_or_deleted_secret_is_repaired(
    operator: OperatorProcess, cluster_objects: Any
) -> None:
    ns = cluster_objects.namespace("repair")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald"))
    status = cluster_objects.ready_identity(ns, "herald")["status"]
    first = status["activeKid"]
    secret = cluster_objects.core.read_namespaced_secret("herald-jwtmesh-key", ns)
    document = json.loads(
        cluster_objects.secret_data(ns, "herald-jwtmesh-key")["signing-keys.json"]
    )
    document["keys"][0]["privateKeyPem"] = generate_signing_key().private_pem()
    secret.data["signing-keys.json"] = base64.b64encode(json.dumps(document).encode()).decode()
    cluster_objects.core.replace_namespaced_secret("herald-jwtmesh-key", ns, secret)
    second = wait_for(
        lambda: (k := cluster_objects.identity(ns, "herald")["status"]["activeKid"]) != first and k,
        20,
        "a repaired signing key",
    )
    assert "SecretRepaired" in wait_for(
        lambda: cluster_objects.event_reasons(ns, "herald") & {"SecretRepaired"},
        10,
        "a repair event",
    )
    wait_for(
        lambda: {first, second} <= cluster_objects.bundle_kids(ns, status["issuer"]),
        10,
        "old key still published, new key published",
    )

    cluster_objects.core.delete_namespaced_secret("herald-jwtmesh-key", ns)
    third = wait_for(
        lambda: (
            (k := cluster_objects.identity(ns, "herald")["status"]["activeKid"])
            not in (first, second)
            and k
        ),
        20,
        "a re-keyed identity",
    )
    data = wait_for(
        lambda: cluster_objects.secret_data(ns, "herald-jwtmesh-key"), 10, "the Secret recreated"
    )
    assert signing_kid(data, time.time()) == third
    wait_for(
        lambda: {second, third} <= cluster_objects.bundle_kids(ns, status["issuer"]),
        10,
        "published keys kept across the loss",
    )


def test_a_secret_whose_label_is_taken_off_is_refused_until_it_is_back(
    operator: OperatorProcess, cluster_objects: Any
) -> None:
    """Only labelled Secrets reach the operator (informer.py): taking the label off
    an identity's Secret removes it from the watch. The identity says so (not Ready, an
    Event) instead of silently dropping its keys, and recovers when the label is back."""
    ns = cluster_objects.namespace("unlabelled")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald"))
    status = cluster_objects.ready_identity(ns, "herald")["status"]
    off = {"metadata": {"labels": {"jwtmesh.io/identity": None}}}
    cluster_objects.core.patch_namespaced_secret("herald-jwtmesh-key", ns, off)

    def refused() -> dict[str, Any] | None:
        conditions = cluster_objects.identity(ns, "herald")["status"]["conditions"]
        ready = next(c for c in conditions if c["type"] == "Ready")
        return ready if ready["reason"] == "SecretNameTaken" else None

    condition = wait_for(refused, 20, "the identity refused for its unlabelled Secret")
    assert condition["status"] == "False"
    assert "lost its label jwtmesh.io/identity=herald" in condition["message"]
    wait_for(
        lambda: "SecretNameTaken" in cluster_objects.event_reasons(ns, "herald"), 10, "an Event"
    )

    on = {"metadata": {"labels": {"jwtmesh.io/identity": "herald"}}}
    cluster_objects.core.patch_namespaced_secret("herald-jwtmesh-key", ns, on)
    again = cluster_objects.ready_identity(ns, "herald", timeout=20)["status"]
    assert again["activeKid"] == status["activeKid"], "the same keys, not new ones"
    wait_for(
        lambda: status["activeKid"] in cluster_objects.bundle_kids(ns, status["issuer"]),
        10,
        "its key published again",
    )


def test_an_edited_or_deleted_trust_bundle_is_written_again(
    operator: OperatorProcess, cluster_objects: Any
) -> None:
    """The publisher skips its read when it has a change to write; a hand edit or a
    deletion since its last write must still be noticed (conflict) and undone."""
    ns = cluster_objects.namespace("bundlefix")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald"))
    status = cluster_objects.ready_identity(ns, "herald")["status"]
    kid, issuer = status["activeKid"], status["issuer"]
    wait_for(lambda: kid in cluster_objects.bundle_kids(ns, issuer), 10, "the key published")

    bundle = cluster_objects.core.read_namespaced_config_map("jwtmesh-trust-bundle", ns)
    bundle.data["bundle.json"] = json.dumps({"version": 1, "issuers": {}})
    cluster_objects.core.replace_namespaced_config_map("jwtmesh-trust-bundle", ns, bundle)
    assert kid not in cluster_objects.bundle_kids(ns, issuer)
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
    wait_for(lambda: kid in cluster_objects.bundle_kids(ns, issuer), 20, "the edit undone")

    cluster_objects.core.delete_namespaced_config_map("jwtmesh-trust-bundle", ns)
    assert cluster_objects.bundle(ns) is None
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("billing"))
    wait_for(lambda: kid in cluster_objects.bundle_kids(ns, issuer), 20, "the bundle recreated")


def test_rotation_on_demand(operator: OperatorProcess, cluster_objects: Any) -> None:
    ns = cluster_objects.namespace("ondemand")
    spec = {"rotation": {"period": "720h", "prePublish": "2s", "retain": "2h"}}
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald", spec))
    first = cluster_objects.ready_identity(ns, "herald")["status"]["activeKid"]
    patch_object(
        cluster_objects.api,
        ns,
        "serviceidentities",
        "herald",
        {"metadata": {"annotations": {"jwtmesh.io/rotate": "now-1"}}},
    )
    second = wait_for(
        lambda: (k := cluster_objects.identity(ns, "herald")["status"]["activeKid"]) != first and k,
        20,
        "the rotated key to sign",
    )
    assert "RotationRequested" in cluster_objects.event_reasons(ns, "herald")
    assert first in cluster_objects.bundle_kids(
        ns, cluster_objects.identity(ns, "herald")["status"]["issuer"]
    ), "the old key is retained"
    assert second


def test_a_namespace_rotate_annotation_rotates_each_identity_in_it_once(
    operator: OperatorProcess, cluster_objects: Any
) -> None:
    """One write asks every identity of a namespace: each rotates once per value, none
    elsewhere, and one created afterwards keeps its first key."""
    asked, other = cluster_objects.namespace("nsrotate"), cluster_objects.namespace("nskept")
    spec = {"rotation": {"period": "720h", "prePublish": "2s", "retain": "2h"}}
    for ns, name in [(asked, "herald"), (asked, "census"), (other, "herald")]:
        create_object(cluster_objects.api, ns, "serviceidentities", service_identity(name, spec))
    first = {
        (ns, name): cluster_objects.ready_identity(ns, name)["status"]["activeKid"]
        for ns, name in [(asked, "herald"), (asked, "census"), (other, "herald")]
    }
    cluster_objects.core.patch_namespace(
        asked, {"metadata": {"annotations": {"jwtmesh.io/rotate": "all-1"}}}
    )

    def rotated() -> bool:
        for name in ("herald", "census"):
            status = cluster_objects.identity(asked, name)["status"]
            if status["activeKid"] == first[(asked, name)]:
                return False
            assert status["lastNamespaceRotationRequest"] == "all-1"
        return True

    wait_for(rotated, 30, "every identity of the namespace signing with a new key")
    assert "RotationRequested" in cluster_objects.event_reasons(asked, "herald")
    untouched = cluster_objects.identity(other, "herald")["status"]
    assert untouched["activeKid"] == first[(other, "herald")]
    assert len(untouched["keys"]) == 1
    assert "lastNamespaceRotationRequest" not in untouched

    create_object(cluster_objects.api, asked, "serviceidentities", service_identity("late", spec))
    late = cluster_objects.ready_identity(asked, "late")["status"]
    assert late["lastNamespaceRotationRequest"] == "all-1"
    time.sleep(3)  # room for a repeated rotation to show (as a third key) if one were made
    for name in ("herald", "census"):
        status = cluster_objects.identity(asked, name)["status"]
        assert len(status["keys"]) == 2, f"{name} rotated once (old key retained, new signs)"
    late = cluster_objects.identity(asked, "late")["status"]
    assert len(late["keys"]) == 1
    assert late["activeKid"] == late["keys"][0]["kid"]


def test_jwks_and_discovery_are_served(operator: OperatorProcess, cluster_objects: Any) -> None:
    ns = cluster_objects.namespace("jwks")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald"))
    status = cluster_objects.ready_identity(ns, "herald")["status"]
    keys = json.loads(operator.get(f"/ns/{ns}/herald/jwks.json"))["keys"]
    assert [k["kid"] for k in keys] == [status["activeKid"]], "its key, no other issuer's"
    discovery = json.loads(operator.get(f"/ns/{ns}/herald/.well-known/openid-configuration"))
    assert discovery["issuer"] == status["issuer"]
    assert discovery["jwks_uri"].endswith(f"/ns/{ns}/herald/jwks.json")
    assert b"jwtmesh_operator_reconciles_total" in operator.get("/metrics")


def test_a_sidecar_verifies_a_token_minted_from_the_operators_secret(
    operator: OperatorProcess, cluster_objects: Any, tmp_path: Path
) -> None:
    """As a kubelet would: the Secret and the bundle ConfigMap become files."""
    ns = cluster_objects.namespace("e2e")
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald"))
    create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
    herald = cluster_objects.ready_identity(ns, "herald")["status"]
    census = cluster_objects.ready_identity(ns, "census")["status"]
    wait_for(lambda: cluster_objects.bundle_kids(ns, herald["issuer"]), 10, "herald published")
    secret = KubeletVolume(tmp_path / "herald-secret")
    secret.write(cluster_objects.secret_data(ns, "herald-jwtmesh-key"))
    bundle = KubeletVolume(tmp_path / "bundle")
    bundle.write({"bundle.json": json.dumps(cluster_objects.bundle(ns)).encode()})
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "jwtmesh_sidecar.cli",
            "token",
            "mint",
            "--keys",
            str(secret.path("signing-keys.json")),
            "--aud",
            census["audience"],
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    verdict = subprocess.run(
        [
            sys.executable,
            "-m",
            "jwtmesh_sidecar.cli",
            "token",
            "inspect",
            token,
            "--bundle",
            str(bundle.path("bundle.json")),
            "--audience",
            census["audience"],
        ],
        capture_output=True,
        text=True,
    )
    assert verdict.returncode == 0, verdict.stdout
    assert f"PASS issuer={herald['issuer']}" in verdict.stdout


def test_a_rotation_period_under_the_operators_floor_is_refused_and_keeps_its_keys(
    local_cluster: LocalCluster, cluster_objects: Any, tmp_path: Path
) -> None:
    """A tenant's 8 s schedule would rewrite every namespace's bundle every 8 s: an
    operator whose floor is 1 h refuses it in status and an Event, and the keys the
    identity had stay published (raising the period is all it takes to carry on)."""
    ns = cluster_objects.namespace("floor")
    floor = OperatorProcess.for_cluster(
        local_cluster, tmp_path, extra=[f"--namespace={ns}", "--min-rotation-period=1h"]
    )
    try:
        create_object(cluster_objects.api, ns, "serviceidentities", service_identity("herald"))
        issuer = cluster_objects.ready_identity(ns, "herald")["status"]["issuer"]
        wait_for(lambda: cluster_objects.bundle_kids(ns, issuer), 10, "the first bundle")
        patch_object(cluster_objects.api, ns, "serviceidentities", "herald", {"spec": FAST})

        def refused() -> dict[str, Any] | None:
            conditions = cluster_objects.identity(ns, "herald")["status"].get("conditions", [])
            ready = next((c for c in conditions if c["type"] == "Ready"), {})
            return ready if ready.get("reason") == "InvalidSpec" else None

        ready = wait_for(refused, 15, "the fast schedule refused")
        assert ready["status"] == "False"
        assert "shorter than this operator's minimum 1h" in ready["message"]
        assert "InvalidSpec" in cluster_objects.event_reasons(ns, "herald")
        assert cluster_objects.bundle_kids(ns, issuer), "its keys stay in the bundle"
    finally:
        floor.stop()
