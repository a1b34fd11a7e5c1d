"""The tenant boundary, attack by attack, against the real kube-apiserver.

The attacker owns namespace `dev`: they may create ServiceIdentities, Secrets,
TokenRevocations and Pods there, and nothing elsewhere. Each test is one way they tried to
become (or harm) a service of namespace `prod`; each fails closed with a stated reason:
refused up front by the API server (the chart's ValidatingAdmissionPolicy), or, where that
policy is bypassed, never published by the operator (status and an Event say why).
The data-plane half (tokens through Envoy) is in test_trust_boundaries_requests.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh_testing.kubeapply import (
    create_cluster_object,
    create_object,
    delete_cluster_object,
    service_identity,
    wait_for,
)

pytestmark = pytest.mark.k8s
TRUST_DOMAIN = "jwtmesh.cluster.local"
POLICY_BINDING = "jwtmesh-jwtmesh-tenancy"


@contextlib.contextmanager
def admission_policy_bypassed(api: client.ApiClient) -> Iterator[None]:
    """As if the chart's admission policy were missing: the operator must hold the line."""
    admission: Any = client.AdmissionregistrationV1Api(api)
    binding = admission.read_validating_admission_policy_binding(POLICY_BINDING)
    admission.delete_validating_admission_policy_binding(POLICY_BINDING)
    try:
        yield
    finally:
        admission.create_validating_admission_policy_binding(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": POLICY_BINDING},
                "spec": api.sanitize_for_serialization(binding.spec),
            }
        )


def create_despite_admission(api: client.ApiClient, ns: str, plural: str, body: Any) -> None:
    """Create once the policy's removal has reached the API server's policy cache."""

    def created() -> bool:
        try:
            create_object(api, ns, plural, body)
        except ApiException as exc:
            if exc.status in (403, 422):
                return False
            raise
        return True

    wait_for(created, 20, f"{plural} past admission")


def refused_by_api_server(api: client.ApiClient, ns: str, plural: str, body: Any) -> str:
    with pytest.raises(ApiException) as refused:
        create_object(api, ns, plural, body)
    assert refused.value.status in (403, 422)
    return str(json.loads(refused.value.body)["message"])


def not_ready(cluster_objects: Any, ns: str, name: str, reason: str) -> dict[str, Any]:
    def refused() -> dict[str, Any] | None:
        body = cluster_objects.identity(ns, name)
        ready = [c for c in body.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
        return ready[0] if ready and ready[0]["reason"] == reason else None

    condition: dict[str, Any] = wait_for(refused, 20, f"{ns}/{name} refused with {reason}")
    assert condition["status"] == "False"
    wait_for(lambda: reason in cluster_objects.event_reasons(ns, name), 10, f"a {reason} Event")
    return condition


def every_bundle_keeps(cluster_objects: Any, victim: Any, *namespaces: str) -> None:
    """After a publish made since the attempt, the victim's issuer holds exactly its own keys
    in every namespace's bundle (each gets the whole trust domain's, the attacker's too)."""
    cluster_objects.await_a_publish(victim.namespace, *namespaces)
    for ns in (victim.namespace, *namespaces):
        assert cluster_objects.bundle_kids(ns, victim.issuer) == set(victim.kids), ns


# --- 1. a borrowed issuer ------------------------------------------------------------------


def test_a_borrowed_issuer_is_refused_by_the_api_server(
    cluster_objects: Any, prod: Any, dev: str
) -> None:
    body = service_identity("intruder", {"issuer": prod.issuer})
    message = refused_by_api_server(cluster_objects.api, dev, "serviceidentities", body)
    assert f"spec.issuer must be under this namespace, https://{TRUST_DOMAIN}/ns/{dev}/" in message


def test_a_borrowed_issuer_past_admission_is_never_published(
    cluster_objects: Any, prod: Any, dev: str
) -> None:
    with admission_policy_bypassed(cluster_objects.api):
        body = service_identity("intruder", {"issuer": prod.issuer})
        create_despite_admission(cluster_objects.api, dev, "serviceidentities", body)
    condition = not_ready(cluster_objects, dev, "intruder", "IssuerNotInNamespace")
    assert "ClusterIdentityGrant" in condition["message"]
    assert cluster_objects.secret_data(dev, "intruder-jwtmesh-key") is None, "no key is made"
    every_bundle_keeps(cluster_objects, prod, dev)


# --- 2. a borrowed audience ----------------------------------------------------------------


def test_a_borrowed_audience_is_refused_by_the_api_server(
    cluster_objects: Any, prod: Any, dev: str
) -> None:
    body = service_identity("intruder", {"audience": prod.audience})
    message = refused_by_api_server(cluster_objects.api, dev, "serviceidentities", body)
    assert f"spec.audience must be <name>.{dev}" in message


def test_a_borrowed_audience_past_admission_is_never_published(
    cluster_objects: Any, prod: Any, dev: str
) -> None:
    with admission_policy_bypassed(cluster_objects.api):
        body = service_identity("intruder", {"audience": prod.audience})
        create_despite_admission(cluster_objects.api, dev, "serviceidentities", body)
    not_ready(cluster_objects, dev, "intruder", "AudienceNotInNamespace")
    assert cluster_objects.secret_data(dev, "intruder-jwtmesh-key") is None


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("issuer", f"https://{TRUST_DOMAIN}/ns/{{ns}}/shared", "IssuerConflict"),
        ("audience", "shared.{ns}", "AudienceConflict"),
    ],
)
def test_of_two_identities_claiming_one_name_the_first_keeps_it(
    cluster_objects: Any, dev: str, field: str, value: str, reason: str
) -> None:
    """Within a namespace too: the later claimant is refused until the holder is gone."""
    name = value.format(ns=dev)
    create_object(
        cluster_objects.api, dev, "serviceidentities", service_identity("a", {field: name})
    )
    first = cluster_objects.ready_identity(dev, "a")["status"]
    holder = {first["activeKid"]}
    # Ready comes before the (debounced, write-budgeted) publish: wait for a's key first,
    # so the check below is about b displacing it, not about a slow publish (a CI run saw
    # the bundle without a's issuer 1.5 s after b was refused).
    wait_for(
        lambda: cluster_objects.bundle_kids(dev, first["issuer"]) == holder or None,
        30,
        "the first identity's key in the bundle",
    )
    create_object(
        cluster_objects.api, dev, "serviceidentities", service_identity("b", {field: name})
    )
    condition = not_ready(cluster_objects, dev, "b", reason)
    assert f"{dev}/a" in condition["message"]
    cluster_objects.await_a_publish(dev)
    assert cluster_objects.bundle_kids(dev, first["issuer"]) == holder
    cluster_objects.delete_identity(dev, "a")
    assert cluster_objects.ready_identity(dev, "b", timeout=30)["status"][field] == name


# --- 3. a forged key Secret ----------------------------------------------------------------


def forged_secret(name: str, issuer: str, jwks: list[dict[str, Any]], owner_uid: str | None) -> Any:
    published = {
        "version": 1,
        "issuer": issuer,
        "keys": [
            {"jwk": jwk, "activatesAt": 0, "retiresAt": None, "removeAt": None} for jwk in jwks
        ],
    }
    metadata: dict[str, Any] = {"name": name, "labels": {"jwtmesh.io/identity": name}}
    if owner_uid is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "jwtmesh.io/v1alpha1",
                "kind": "ServiceIdentity",
                "name": "own",
                "uid": owner_uid,
                "controller": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "jwtmesh.io/signing-key",
        "metadata": metadata,
        "data": {"published-keys.json": base64.b64encode(json.dumps(published).encode()).decode()},
    }


def test_a_forged_signing_secret_never_reaches_a_bundle(
    cluster_objects: Any, prod: Any, dev: str
) -> None:
    """A hand-made Secret naming prod's issuer, one reusing prod's kid for another key, and
    one claiming to belong to the attacker's own identity: none is a key the operator made
    for a publishable identity, so none is published."""
    attacker = generate_signing_key()
    own = create_object(cluster_objects.api, dev, "serviceidentities", service_identity("own"))
    cluster_objects.ready_identity(dev, "own")
    stolen_kid = dict(attacker.public.to_jwk(), kid=next(iter(prod.kids)))
    for name, jwks, owner in [
        ("forged", [attacker.public.to_jwk()], None),
        ("displacer", [stolen_kid], None),
        ("adopted", [attacker.public.to_jwk()], own["metadata"]["uid"]),
    ]:
        cluster_objects.core.create_namespaced_secret(
            dev, forged_secret(name, prod.issuer, jwks, owner)
        )
    every_bundle_keeps(cluster_objects, prod, dev)
    for ns in (prod.namespace, dev):
        document = json.dumps(cluster_objects.bundle(ns))
        assert attacker.kid not in document
        assert attacker.public.to_jwk()["x"] not in document


# --- 4. cross-namespace revocation ---------------------------------------------------------


def revocation(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "jwtmesh.io/v1alpha1",
        "kind": "TokenRevocation",
        "metadata": {"name": name},
        "spec": spec,
    }


def accepted(cluster_objects: Any, ns: str | None, plural: str, name: str) -> dict[str, Any]:
    def condition() -> dict[str, Any] | None:
        body = cluster_objects.custom(ns, plural, name)
        found = [
            c for c in (body.get("status") or {}).get("conditions", []) if c["type"] == "Accepted"
        ]
        return found[0] if found else None

    found: dict[str, Any] = wait_for(condition, 20, f"{plural} {name} judged")
    return found


def test_revoking_another_namespaces_issuer_is_refused_by_the_api_server(
    cluster_objects: Any, prod: Any, dev: str
) -> None:
    body = revocation("everything", issuer=prod.issuer, issuedBefore="2100-01-01T00:00:00Z")
    message = refused_by_api_server(cluster_objects.api, dev, "tokenrevocations", body)
    assert "ClusterTokenRevocation" in message


@pytest.mark.parametrize(
    "spec",
    [
        {"issuedBefore": "2026-01-01T00:00:00Z"},
        {"kid": "KID"},
        {"jti": "some-jti", "expiresAt": "2100-01-01T00:00:00Z"},
    ],
    ids=["every token before a cutoff", "its current kid (public in the bundle)", "one jti"],
)
def test_revoking_another_namespaces_issuer_past_admission_has_no_effect(
    cluster_objects: Any, prod: Any, dev: str, spec: dict[str, Any]
) -> None:
    spec = {k: (next(iter(prod.kids)) if v == "KID" else v) for k, v in spec.items()}
    with admission_policy_bypassed(cluster_objects.api):
        create_despite_admission(
            cluster_objects.api,
            dev,
            "tokenrevocations",
            revocation("theirs", issuer=prod.issuer, **spec),
        )
    condition = accepted(cluster_objects, dev, "tokenrevocations", "theirs")
    assert (condition["status"], condition["reason"]) == ("False", "CrossNamespace")
    wait_for(lambda: "CrossNamespace" in cluster_objects.event_reasons(dev, "theirs"), 10, "Event")
    every_bundle_keeps(cluster_objects, prod, dev)
    entry = cluster_objects.bundle(prod.namespace)["issuers"][prod.issuer]
    assert "revocations" not in entry
    status = cluster_objects.identity(prod.namespace, "payments")["status"]
    assert status["activeKid"] in prod.kids, "prod was not forced to re-key"


def test_naming_another_namespaces_identity_has_no_effect(
    cluster_objects: Any, prod: Any, dev: str
) -> None:
    body = revocation("by-name", identity="payments", issuedBefore="2026-01-01T00:00:00Z")
    create_object(cluster_objects.api, dev, "tokenrevocations", body)
    condition = accepted(cluster_objects, dev, "tokenrevocations", "by-name")
    assert (condition["status"], condition["reason"]) == ("False", "UnknownIdentity")
    every_bundle_keeps(cluster_objects, prod, dev)


def test_a_cutoff_in_the_future_is_refused_even_in_its_own_namespace(
    cluster_objects: Any, prod: Any
) -> None:
    body = revocation("forever", identity="payments", issuedBefore="2100-01-01T00:00:00Z")
    create_object(cluster_objects.api, prod.namespace, "tokenrevocations", body)
    condition = accepted(cluster_objects, prod.namespace, "tokenrevocations", "forever")
    assert (condition["status"], condition["reason"]) == ("False", "FutureCutoff")
    every_bundle_keeps(cluster_objects, prod)


def test_a_cluster_token_revocation_reaches_any_namespace(cluster_objects: Any, prod: Any) -> None:
    """What a namespace tenant may not do, a cluster admin can."""
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    name = f"incident-{prod.namespace}"
    create_cluster_object(
        cluster_objects.api,
        "clustertokenrevocations",
        {
            "apiVersion": "jwtmesh.io/v1alpha1",
            "kind": "ClusterTokenRevocation",
            "metadata": {"name": name},
            "spec": {
                "identity": {"namespace": prod.namespace, "name": "payments"},
                "issuedBefore": cutoff,
            },
        },
    )
    try:
        condition = accepted(cluster_objects, None, "clustertokenrevocations", name)
        assert (condition["status"], condition["reason"]) == ("True", "Accepted")
        wait_for(
            lambda: "revocations" in cluster_objects.bundle(prod.namespace)["issuers"][prod.issuer],
            10,
            "the cutoff in prod's bundle",
        )
    finally:
        delete_cluster_object(cluster_objects.api, "clustertokenrevocations", name)
