"""The token core's half of the trust boundary: `sub` is bound to its mesh issuer, a mesh
identity may carry only granted claims, and roles come from the callee's policy."""

from __future__ import annotations

from typing import Any

import pytest

from jwtmesh.policy import Caller, PolicyError, evaluate, policy_from_dict
from jwtmesh.tokens.errors import ClaimNotGranted, SubjectMismatch
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, MeshIdentity, TrustBundle, parse_bundle, render_bundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings

NOW = 1_800_000_000.0
INTRUDER = "https://jwtmesh.cluster.local/ns/dev/intruder"
IDP = "https://idp.example.com"
KEY, IDP_KEY = generate_signing_key(), generate_signing_key()
MESH = MeshIdentity(
    "intruder.dev",
    "dev",
    {"roles": ["reader", "writer"], "tier": "gold", "mfa": True, "ranges": [[1, 2]]},
)
BUNDLE = TrustBundle(
    {
        INTRUDER: IssuerTrust({KEY.kid: KEY.public}, mesh=MESH),
        IDP: IssuerTrust({IDP_KEY.kid: IDP_KEY.public}),
    }
)
VERIFIER = Verifier(BUNDLE, VerifierSettings(audience="census.prod"))


def token(subject: str = "intruder.dev", issuer: str = INTRUDER, **claims: Any) -> str:
    key = KEY if issuer == INTRUDER else IDP_KEY
    return mint_token(
        key,
        issuer=issuer,
        subject=subject,
        audience="census.prod",
        now=NOW,
        lifetime=60,
        extra_claims=claims,
    )


def test_a_mesh_token_naming_another_subject_is_refused() -> None:
    """A dev identity's own key signing `sub: herald.default` never speaks for herald."""
    with pytest.raises(SubjectMismatch):
        VERIFIER.verify(token(subject="herald.default"), NOW)


def test_the_bound_subject_verifies_with_its_namespace() -> None:
    verified = VERIFIER.verify(token(), NOW)
    assert (verified.subject, verified.namespace) == ("intruder.dev", "dev")


@pytest.mark.parametrize(
    "claims",
    [
        {"roles": ["admin"]},
        {"roles": ["reader", "admin"]},
        {"tier": "platinum"},
        {"admin": True},
        {"tier": ["gold"]},
        {"mfa": 1},
        {"ranges": [[1.0, 2]]},
        {"ranges": [[True, 2]]},
    ],
    ids=[
        "a role never granted",
        "one granted and one not",
        "another value",
        "another claim",
        "a list where a value was granted",
        "a number where a boolean was granted",
        "a float inside a granted list",
        "a boolean inside a granted list",
    ],
)
def test_a_claim_beyond_the_grant_is_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(ClaimNotGranted):
        VERIFIER.verify(token(**claims), NOW)


@pytest.mark.parametrize(
    "claims",
    [{}, {"roles": ["reader"]}, {"roles": "writer"}, {"tier": "gold"}, {"ranges": [[1, 2]]}],
    ids=["none", "a granted subset", "a granted value", "a granted scalar", "a granted list"],
)
def test_granted_claims_verify(claims: dict[str, Any]) -> None:
    assert VERIFIER.verify(token(**claims), NOW).claims.items() >= claims.items()


def test_an_external_issuer_keeps_its_claims_and_its_subjects() -> None:
    verified = VERIFIER.verify(token(subject="alice", issuer=IDP, groups=["lra-admins"]), NOW)
    assert (verified.subject, verified.claims["groups"], verified.namespace) == (
        "alice",
        ["lra-admins"],
        None,
    )


def test_the_bundle_carries_the_binding_and_the_grant_and_reads_them_back() -> None:
    data = render_bundle(BUNDLE)
    assert parse_bundle(data) == BUNDLE
    assert b'"subject":"intruder.dev"' in data


POLICY = policy_from_dict(
    {
        "roles": {
            "reader": [{"subject": "herald.prod"}, {"namespace": "ops"}],
            "admin": [{"issuer": IDP, "claims": [{"claim": "groups", "contains": "admins"}]}],
        },
        "rules": [
            {"name": "read", "paths": ["/users"], "methods": ["GET"], "roles": ["reader", "admin"]},
            {"name": "delete", "paths": ["/users"], "methods": ["DELETE"], "roles": ["admin"]},
        ],
    }
)


@pytest.mark.parametrize(
    ("caller", "method", "allowed"),
    [
        (
            Caller("https://m/ns/prod/herald", "herald.prod", {}, "prod", subject_bound=True),
            "GET",
            True,
        ),
        (Caller("https://m/ns/ops/any", "any.ops", {}, "ops", subject_bound=True), "GET", True),
        (
            Caller(
                "https://m/ns/dev/x", "x.dev", {"groups": ["admins"]}, "dev", subject_bound=True
            ),
            "DELETE",
            False,
        ),
        (Caller(IDP, "alice", {"groups": ["admins"]}), "DELETE", True),
        (Caller(IDP, "bob", {"groups": ["users"]}), "GET", False),
        (Caller(IDP, "herald.prod", {}), "GET", False),
    ],
    ids=[
        "a bound subject",
        "a bound namespace",
        "claims from the wrong issuer",
        "an IdP group",
        "an IdP user without the group",
        "an IdP user whose sub is a mesh identity's",
    ],
)
def test_roles_are_what_the_callees_policy_binds(
    caller: Caller, method: str, allowed: bool
) -> None:
    result = evaluate(POLICY, method=method, path="/users", caller=caller)
    assert result.allowed is allowed
    assert result.reason == ("allowed" if allowed else "role_required")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {
                "rules": [{"paths": ["/"], "roles": ["admni"]}],
                "roles": {"admin": [{"subject": "a"}]},
            },
            "undefined role",
        ),
        ({"roles": {"admin": [{}]}}, "not all callers"),
        ({"roles": {"admin": []}}, "non-empty list"),
        ({"roles": {"admin": [{"subject": ""}]}}, "non-empty string"),
        ({"roles": {"admin": [{"user": "a"}]}}, "unknown field"),
    ],
    ids=[
        "a misspelled role",
        "a member matching everyone",
        "no members",
        "an empty subject",
        "an unknown member field",
    ],
)
def test_a_role_table_that_could_admit_by_mistake_is_refused(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_from_dict(document)
