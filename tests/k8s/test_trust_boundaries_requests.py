"""The tenant boundary for requests: tokens from the operator's real Secrets, verified by a
real sidecar behind a real Envoy against the bundle the operator published.

The attacker holds one identity's key (dev/intruder, theirs by right) and tries to speak
for another service, or to give itself roles. Then the LRA coordinator's role table works
end to end, with roles granted by the coordinator's own policy.
(The control-plane half is in test_trust_boundaries.py.)
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jwtmesh.identity import active_key, parse_identity
from jwtmesh.tokens.mint import mint_token
from jwtmesh_testing.guarded import GuardedService, guarded_service
from jwtmesh_testing.kubeapply import (
    create_cluster_object,
    create_namespace,
    create_object,
    delete_cluster_object,
    get_object,
    service_identity,
    wait_for,
)
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess
from jwtmesh_testing.paths import EXAMPLES

pytestmark = pytest.mark.k8s


@pytest.fixture(scope="module")
def operator(
    local_cluster: LocalCluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess.for_cluster(local_cluster, tmp_path_factory.mktemp("requests"))
    yield process
    process.stop()


def mint(cluster_objects: Any, ns: str, name: str, audience: str, **claims: Any) -> str:
    """A token from the identity's own Secret (what its sidecar would mint), with the
    claims given (None removes a claim the identity would carry)."""
    identity = parse_identity(
        cluster_objects.secret_data(ns, f"{name}-jwtmesh-key")["signing-keys.json"]
    )
    key = active_key(identity, time.time())
    assert key is not None
    extra = {**identity.claims, **claims}
    subject = extra.pop("sub", identity.subject)
    return mint_token(
        key,
        issuer=extra.pop("iss", identity.issuer),
        subject=subject,
        audience=audience,
        now=time.time(),
        lifetime=300,
        extra_claims={k: v for k, v in extra.items() if v is not None},
    )


def bundle_bytes(cluster_objects: Any, ns: str) -> bytes:
    return json.dumps(cluster_objects.bundle(ns)).encode()


@pytest.fixture(scope="module")
def scene(operator: OperatorProcess, cluster_objects: Any) -> dict[str, Any]:
    """prod/payments (the callee), prod/herald (a caller it trusts), dev/intruder."""
    prod, dev = cluster_objects.namespace("prod"), cluster_objects.namespace("dev")
    for ns, name in [(prod, "payments"), (prod, "herald"), (dev, "intruder")]:
        create_object(cluster_objects.api, ns, "serviceidentities", service_identity(name))
    statuses = {
        name: cluster_objects.ready_identity(ns, name)["status"]
        for ns, name in [(prod, "payments"), (prod, "herald"), (dev, "intruder")]
    }
    for status in statuses.values():
        wait_for(lambda s=status: cluster_objects.bundle_kids(prod, s["issuer"]), 10, "published")
    return {"prod": prod, "dev": dev, **statuses}


@pytest.fixture(params=["http", "grpc"])
def payments(
    request: pytest.FixtureRequest, scene: dict[str, Any], cluster_objects: Any, tmp_path: Path
) -> Iterator[GuardedService]:
    """prod/payments behind Envoy + sidecar, in both ext_authz modes."""
    with guarded_service(
        tmp_path,
        scene["payments"]["audience"],
        bundle_bytes(cluster_objects, scene["prod"]),
        mode=request.param,
    ) as service:
        yield service


# --- 5. sub is bound to the issuer ----------------------------------------------------------


def test_a_token_signed_by_one_identity_cannot_name_another_as_its_subject(
    payments: GuardedService, scene: dict[str, Any], cluster_objects: Any
) -> None:
    impersonation = mint(
        cluster_objects,
        scene["dev"],
        "intruder",
        scene["payments"]["audience"],
        sub=scene["herald"]["audience"],
    )
    answer = payments.call("GET", "/pay", impersonation)
    assert (answer.status, answer.reason) == (401, "subject_mismatch")


def test_a_token_claiming_another_issuer_does_not_verify_with_the_intruders_key(
    payments: GuardedService, scene: dict[str, Any], cluster_objects: Any
) -> None:
    forged = mint(
        cluster_objects,
        scene["dev"],
        "intruder",
        scene["payments"]["audience"],
        iss=scene["herald"]["issuer"],
        sub=scene["herald"]["audience"],
    )
    answer = payments.call("GET", "/pay", forged)
    assert (answer.status, answer.reason) == (401, "unknown_kid")


def test_the_intruder_is_still_itself_and_nobody_else(
    payments: GuardedService, scene: dict[str, Any], cluster_objects: Any
) -> None:
    """The control: its own token is accepted, and the upstream is told who it is."""
    own = mint(cluster_objects, scene["dev"], "intruder", scene["payments"]["audience"])
    answer = payments.call("GET", "/pay", own)
    assert answer.status == 200
    assert answer.body["headers"]["x-jwtmesh-subject"] == scene["intruder"]["audience"]


# --- 6. roles come from someone allowed to grant them --------------------------------------


def test_roles_a_mesh_identity_gives_itself_are_refused(
    payments: GuardedService, scene: dict[str, Any], cluster_objects: Any
) -> None:
    token = mint(
        cluster_objects, scene["dev"], "intruder", scene["payments"]["audience"], roles=["admin"]
    )
    answer = payments.call("GET", "/pay", token)
    assert (answer.status, answer.reason) == (401, "claim_not_granted")


def test_claims_a_cluster_admin_granted_are_minted_and_accepted_and_nothing_beyond(
    scene: dict[str, Any], cluster_objects: Any, tmp_path: Path
) -> None:
    dev, prod = scene["dev"], scene["prod"]
    grant = f"intruder-reader-{dev}"
    create_cluster_object(
        cluster_objects.api,
        "clusteridentitygrants",
        {
            "apiVersion": "jwtmesh.io/v1alpha1",
            "kind": "ClusterIdentityGrant",
            "metadata": {"name": grant},
            "spec": {
                "identity": {"namespace": dev, "name": "intruder"},
                "claims": {"roles": ["reader"]},
            },
        },
    )
    try:
        issuer = scene["intruder"]["issuer"]
        wait_for(
            lambda: cluster_objects.bundle(prod)["issuers"][issuer].get("claims"), 20, "the grant"
        )
        wait_for(
            lambda: (
                parse_identity(
                    cluster_objects.secret_data(dev, "intruder-jwtmesh-key")["signing-keys.json"]
                ).claims
            ),
            20,
            "the grant in the identity's Secret",
        )
        audience = scene["payments"]["audience"]
        with guarded_service(tmp_path, audience, bundle_bytes(cluster_objects, prod)) as payments:
            granted = payments.call("GET", "/pay", mint(cluster_objects, dev, "intruder", audience))
            assert granted.status == 200
            claims = json.loads(
                base64.urlsafe_b64decode(granted.body["headers"]["x-jwtmesh-claims"] + "==")
            )
            assert claims["roles"] == ["reader"], "the sidecar's minting carries the grant"
            beyond = mint(cluster_objects, dev, "intruder", audience, roles=["reader", "admin"])
            answer = payments.call("GET", "/pay", beyond)
            assert (answer.status, answer.reason) == (401, "claim_not_granted")
    finally:
        delete_cluster_object(cluster_objects.api, "clusteridentitygrants", grant)


# --- the LRA coordinator, end to end ----------------------------------------------------------

LRA_CALLS = [
    # caller, method, path, allowed (one allowed and one refused call per role)
    ("booking", "POST", "/lra-coordinator/start", True),
    ("booking", "PUT", "/lra-coordinator/nested/7/complete", False),
    ("lra-participant", "PUT", "/lra-coordinator/nested/7/complete", True),
    ("lra-participant", "POST", "/lra-coordinator/start", False),
    ("lra-ops", "GET", "/lra-coordinator/recovery", True),
    ("lra-ops", "PUT", "/lra-coordinator/42/close", False),
]


@pytest.fixture(scope="module")
def lra(operator: OperatorProcess, cluster_objects: Any) -> dict[str, Any]:
    """The coordinator and its callers in namespace `demo`, as the example policy names them."""
    create_namespace(cluster_objects.api, "demo")
    policy = yaml.safe_load((EXAMPLES / "policies" / "lra-coordinator.yaml").read_text())
    wanted = {
        "lra-coordinator": {"policy": policy},
        "booking": {},
        "lra-participant": {},
        "lra-ops": {},
        "intruder": {},
    }
    for name, spec in wanted.items():  # the demo (same cluster) may have made some already
        if get_object(cluster_objects.api, "demo", "serviceidentities", name) is None:
            create_object(
                cluster_objects.api, "demo", "serviceidentities", service_identity(name, spec)
            )
    for name in wanted:  # each caller's keys in the bundle the coordinator is given
        issuer = cluster_objects.ready_identity("demo", name)["status"]["issuer"]
        wait_for(
            lambda i=issuer: cluster_objects.bundle_kids("demo", i), 30, f"{name}'s published keys"
        )
    rendered = wait_for(
        lambda: cluster_objects.core.read_namespaced_config_map(
            "lra-coordinator-jwtmesh-policy", "demo"
        ),
        10,
        "the coordinator's policy ConfigMap",
    )
    return {"policy": yaml.safe_load(rendered.data["policy.yaml"])}


@pytest.mark.parametrize(
    ("caller", "method", "path", "allowed"),
    LRA_CALLS,
    ids=[f"{c} {'may' if a else 'may not'} {m} {p}" for c, m, p, a in LRA_CALLS],
)
def test_the_lra_coordinator_admits_each_role_where_its_table_says(
    lra: dict[str, Any],
    cluster_objects: Any,
    tmp_path: Path,
    caller: str,
    method: str,
    path: str,
    allowed: bool,
) -> None:
    with guarded_service(
        tmp_path, "lra-coordinator.demo", bundle_bytes(cluster_objects, "demo"), lra["policy"]
    ) as coordinator:
        answer = coordinator.call(
            method, path, mint(cluster_objects, "demo", caller, "lra-coordinator.demo")
        )
        assert (answer.status, answer.reason) == (
            (200, "allowed") if allowed else (403, "role_required")
        )


def test_a_caller_claiming_a_role_in_its_own_token_gets_no_role(
    lra: dict[str, Any], cluster_objects: Any, tmp_path: Path
) -> None:
    with guarded_service(
        tmp_path, "lra-coordinator.demo", bundle_bytes(cluster_objects, "demo"), lra["policy"]
    ) as coordinator:
        plain = mint(cluster_objects, "demo", "intruder", "lra-coordinator.demo")
        assert coordinator.call("GET", "/lra-coordinator/recovery", plain).reason == "role_required"
        claiming = mint(
            cluster_objects, "demo", "intruder", "lra-coordinator.demo", roles=["admin"]
        )
        answer = coordinator.call("GET", "/lra-coordinator/recovery", claiming)
        assert (answer.status, answer.reason) == (401, "claim_not_granted")


def test_the_policy_crd_accepts_the_role_table(lra: dict[str, Any]) -> None:
    assert set(lra["policy"]["roles"]) == {"client", "system", "admin"}
